/* Check suite for agw/config.c: defaults, the INI file, every key type's bounds, the command
   line, validation, printing (round trip) and the reload check. */
#include "agw/config.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXAMPLE "agw/ims-agw.conf.example"

static char tmpdir[] = "/tmp/test_config.XXXXXX";

/* ---- helpers ---- */

/* Writes text to tmpdir/name; the path goes to path (PATH_MAX-sized buffer). */
static void write_file(const char *name, const char *text, size_t len, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static char path_buf[512];
static char err[1024];

/* Loads text over the defaults; rc returned, the file's path in path_buf, the error in err. */
static int load_text(struct agw_config *cfg, const char *text)
{
    write_file("t.conf", text, strlen(text), path_buf, sizeof(path_buf));
    agw_config_init_defaults(cfg);
    err[0] = '\0';
    return agw_config_load_file(cfg, path_buf, err, sizeof(err));
}

/* Loading text fails with "<path>:<rest>". */
static void load_fails(const char *text, const char *rest)
{
    struct agw_config cfg;
    int rc = load_text(&cfg, text);
    char want[1024];
    snprintf(want, sizeof(want), "%s:%s", path_buf, rest);
    ck_assert_msg(rc == -EINVAL, "rc %d for:\n%s", rc, text);
    ck_assert_str_eq(err, want);
}

/* Loading text succeeds and validation gives want ("" = valid). */
static void validate_gives(const char *text, const char *want)
{
    struct agw_config cfg;
    ck_assert_msg(load_text(&cfg, text) == 0, "load: %s", err);
    int rc = agw_config_validate(&cfg, err, sizeof(err));
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(rc, want[0] ? -EINVAL : 0);
}

/* Setting key in section to value fails with exactly want, or succeeds if want is NULL. */
static void set_gives(const char *section, const char *key, const char *value, const char *want)
{
    struct agw_config cfg, before;
    agw_config_init_defaults(&cfg);
    before = cfg;
    err[0] = '\0';
    int rc = agw_config_set(&cfg, section, key, value, err, sizeof(err));
    if (want == NULL) {
        ck_assert_msg(rc == 0, "%s = '%s': %s", key, value, err);
        return;
    }
    ck_assert_msg(rc == -EINVAL, "%s = '%s' gave %d", key, value, rc);
    ck_assert_str_eq(err, want);
    ck_assert_msg(agw_config_equal(&cfg, &before), "a failed set changed the config");
}

static struct agw_config set_ok(const char *section, const char *key, const char *value)
{
    struct agw_config cfg;
    agw_config_init_defaults(&cfg);
    int rc = agw_config_set(&cfg, section, key, value, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s = '%s': %s", key, value, err);
    return cfg;
}

static const char *addr_text(const struct sockaddr_storage *ss, bool with_port)
{
    static char text[64];
    ck_assert_int_eq(agw_config_format_address(ss, with_port, text, sizeof(text)), 0);
    return text;
}

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int parse(struct agw_config *cfg, struct agw_config_cli *cli, int argc, char **argv)
{
    err[0] = '\0';
    return agw_config_parse_args(cfg, argc, argv, cli, err, sizeof(err));
}

/* ---- defaults and the example ---- */

START_TEST(test_defaults)
{
    struct agw_config cfg;
    memset(&cfg, 0x5a, sizeof(cfg));
    agw_config_init_defaults(&cfg);
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), 0);
    ck_assert_str_eq(addr_text(&cfg.iq_listen, true), "127.0.0.1:2944");
    ck_assert_uint_eq(cfg.mgc_count, 1);
    ck_assert_str_eq(addr_text(&cfg.mgc[0], true), "127.0.0.1:2947");
    ck_assert_str_eq(cfg.mid, "");
    ck_assert_str_eq(cfg.profile, "threegiq/1");
    ck_assert_uint_eq(cfg.workers, 0);
    ck_assert_int_eq(cfg.log_level, AGW_LOG_INFO);
    ck_assert_uint_eq(cfg.max_contexts, 10000);
    ck_assert_uint_eq(cfg.max_terminations_per_context, 4);
    ck_assert_str_eq(cfg.default_realm, "access");
    ck_assert_uint_eq(cfg.long_timer_ms, 30000);
    ck_assert_uint_eq(cfg.provisional_timer_ms, 500);
    ck_assert_uint_eq(cfg.mg_initial_rto_ms, 500);
    ck_assert_uint_eq(cfg.mg_min_rto_ms, 100);
    ck_assert_uint_eq(cfg.mg_max_rto_ms, 4000);
    ck_assert_uint_eq(cfg.mg_max_retransmissions, 7);
    ck_assert_uint_eq(cfg.relay_buffer_bytes, 65536);
    ck_assert_uint_eq(cfg.handshake_timeout_ms, 10000);
    ck_assert_uint_eq(cfg.realm_count, 2);
    ck_assert_str_eq(cfg.realms[0].name, "access");
    ck_assert_str_eq(addr_text(&cfg.realms[0].address, false), "127.0.0.1");
    ck_assert_uint_eq(cfg.realms[0].ports.low, 20000);
    ck_assert_uint_eq(cfg.realms[0].ports.high, 29999);
    ck_assert_str_eq(cfg.realms[0].certificate, "");
    ck_assert_str_eq(cfg.realms[0].private_key, "");
    ck_assert_str_eq(cfg.realms[1].name, "core");
    ck_assert_str_eq(addr_text(&cfg.realms[1].address, false), "127.0.0.1");
    ck_assert_uint_eq(cfg.realms[1].ports.low, 30000);
    ck_assert_uint_eq(cfg.realms[1].ports.high, 39999);

    char mid[64];
    agw_config_mid(&cfg, mid, sizeof(mid));
    ck_assert_str_eq(mid, "[127.0.0.1]:2944");

    /* No options at all: the defaults, validated. */
    struct agw_config from_args;
    struct agw_config_cli cli;
    char *argv[] = {"ims-agw", NULL};
    ck_assert_int_eq(parse(&from_args, &cli, 1, argv), 0);
    ck_assert(agw_config_equal(&from_args, &cfg));
    ck_assert_ptr_null(cli.config_path);
    ck_assert(!cli.check_only && !cli.help && !cli.version);
}
END_TEST

/* Loaded over an all-zero config, the example must set every key to the embedded default. */
START_TEST(test_example_file)
{
    struct agw_config cfg, defaults;
    memset(&cfg, 0, sizeof(cfg));
    agw_config_init_defaults(&defaults);
    int rc = agw_config_load_file(&cfg, EXAMPLE, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), 0);
    ck_assert(agw_config_equal(&cfg, &defaults));

    struct agw_config_cli cli;
    char *argv[] = {"ims-agw", "-t", "-c", EXAMPLE, NULL};
    ck_assert_int_eq(parse(&cfg, &cli, ARGC(argv) - 1, argv), 0);
    ck_assert_str_eq(cli.config_path, EXAMPLE);
    ck_assert(cli.check_only);
    ck_assert(agw_config_equal(&cfg, &defaults));
}
END_TEST

/* ---- key types ---- */

START_TEST(test_uint_bounds)
{
    set_gives("global", "max_contexts", "1", NULL);
    set_gives("global", "max_contexts", "1000000", NULL);
    set_gives("global", "max_contexts", "0",
              "key 'max_contexts' in [global]: 0 is out of range 1..1000000");
    set_gives("global", "max_contexts", "1000001",
              "key 'max_contexts' in [global]: 1000001 is out of range 1..1000000");
    set_gives("global", "max_contexts", "99999999999999999999",
              "key 'max_contexts' in [global]: 99999999999999999999 is out of range 1..1000000");
    set_gives("global", "max_contexts", "4294967296",
              "key 'max_contexts' in [global]: 4294967296 is out of range 1..1000000");
    set_gives("global", "max_contexts", "ten",
              "key 'max_contexts' in [global]: 'ten' is not a number");
    set_gives("global", "max_contexts", "-1",
              "key 'max_contexts' in [global]: '-1' is not a number");
    set_gives("global", "max_contexts", "+5",
              "key 'max_contexts' in [global]: '+5' is not a number");
    set_gives("global", "max_contexts", "0x10",
              "key 'max_contexts' in [global]: '0x10' is not a number");
    set_gives("global", "max_contexts", "1 0",
              "key 'max_contexts' in [global]: '1 0' is not a number");
    set_gives("global", "max_contexts", "", "key 'max_contexts' in [global]: a value is required");
    set_gives("global", "max_contexts", "  ",
              "key 'max_contexts' in [global]: a value is required");
    set_gives("global", "max_terminations_per_context", "17",
              "key 'max_terminations_per_context' in [global]: 17 is out of range 1..16");
    set_gives("global", "relay_buffer_bytes", "4095",
              "key 'relay_buffer_bytes' in [global]: 4095 is out of range 4096..16777216");
    set_gives("global", "relay_buffer_bytes", "16777217",
              "key 'relay_buffer_bytes' in [global]: 16777217 is out of range 4096..16777216");
    set_gives("global", "mg_max_retransmissions", "101",
              "key 'mg_max_retransmissions' in [global]: 101 is out of range 0..100");
    set_gives("global", "long_timer_ms", "999",
              "key 'long_timer_ms' in [global]: 999 is out of range 1000..600000");

    struct agw_config cfg = set_ok("global", "max_contexts", " 42 ");
    ck_assert_uint_eq(cfg.max_contexts, 42);
    cfg = set_ok("global", "relay_buffer_bytes", "16777216");
    ck_assert_uint_eq(cfg.relay_buffer_bytes, 16777216);
    cfg = set_ok("global", "mg_max_retransmissions", "0");
    ck_assert_uint_eq(cfg.mg_max_retransmissions, 0);
    cfg = set_ok("global", "max_contexts", "007");
    ck_assert_uint_eq(cfg.max_contexts, 7);

    /* workers: a number or auto (stored as 0). */
    cfg = set_ok("global", "workers", "64");
    ck_assert_uint_eq(cfg.workers, 64);
    cfg = set_ok("global", "workers", "1");
    ck_assert_uint_eq(cfg.workers, 1);
    cfg.workers = 5;
    ck_assert_int_eq(agw_config_set(&cfg, "global", "workers", "auto", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.workers, 0);
    set_gives("global", "workers", "0", "key 'workers' in [global]: 0 is out of range 1..64");
    set_gives("global", "workers", "65", "key 'workers' in [global]: 65 is out of range 1..64");
    set_gives("global", "workers", "Auto",
              "key 'workers' in [global]: 'Auto' is not a number or auto");
    set_gives("global", "workers", "", "key 'workers' in [global]: a value is required");
}
END_TEST

START_TEST(test_enum)
{
    static const struct {
        const char *text;
        enum agw_log_level level;
    } levels[] = {{"error", AGW_LOG_ERROR},
                  {"warn", AGW_LOG_WARN},
                  {"info", AGW_LOG_INFO},
                  {"debug", AGW_LOG_DEBUG}};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        struct agw_config cfg = set_ok("global", "log_level", levels[i].text);
        ck_assert_int_eq(cfg.log_level, levels[i].level);
    }
    set_gives("global", "log_level", "verbose",
              "key 'log_level' in [global]: 'verbose' is not one of error, warn, info, debug");
    set_gives("global", "log_level", "INFO",
              "key 'log_level' in [global]: 'INFO' is not one of error, warn, info, debug");
    set_gives("global", "log_level", "infox",
              "key 'log_level' in [global]: 'infox' is not one of error, warn, info, debug");
    set_gives("global", "log_level", "", "key 'log_level' in [global]: a value is required");
}
END_TEST

START_TEST(test_addr_port)
{
    struct agw_config cfg = set_ok("global", "iq_listen", "[::1]:2944");
    ck_assert_int_eq(cfg.iq_listen.ss_family, AF_INET6);
    ck_assert_str_eq(addr_text(&cfg.iq_listen, true), "[::1]:2944");
    char mid[80];
    agw_config_mid(&cfg, mid, sizeof(mid));
    ck_assert_str_eq(mid, "[::1]:2944");

    cfg = set_ok("global", "iq_listen", "[2001:DB8:0::1]:0"); /* 0: any free port */
    ck_assert_str_eq(addr_text(&cfg.iq_listen, true), "[2001:db8::1]:0");
    cfg = set_ok("global", "iq_listen", "10.1.2.3:65535");
    ck_assert_int_eq(cfg.iq_listen.ss_family, AF_INET);
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)&cfg.iq_listen;
    ck_assert_uint_eq(ntohl(v4->sin_addr.s_addr), 0x0a010203);
    ck_assert_uint_eq(ntohs(v4->sin_port), 65535);
    cfg = set_ok("global", "iq_listen", "[10.1.2.3]:2944"); /* as H.248 writes it */
    ck_assert_str_eq(addr_text(&cfg.iq_listen, true), "10.1.2.3:2944");
    cfg = set_ok("global", "iq_listen", "0.0.0.0:2944");
    ck_assert_str_eq(addr_text(&cfg.iq_listen, true), "0.0.0.0:2944");

    set_gives("global", "iq_listen", "::1:2944",
              "key 'iq_listen' in [global]: '::1:2944': an IPv6 address:port is written "
              "[addr]:port");
    static const char *const bad[] = {
        "127.0.0.1",    "127.0.0.1:", ":2944",     "256.1.1.1:1",    "1.2.3:2944",
        "[::1]",        "[::1]2944",  "[::1:2944", "localhost:2944", "127.0.0.1:x",
        "127.0.0.1:-1", "[::g]:1",    "[]:2944",   "01.2.3.4:2944",  "[fe80::1%lo]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want),
                 "key 'iq_listen' in [global]: '%s' is not an address:port (a.b.c.d:port or "
                 "[v6]:port)",
                 bad[i]);
        set_gives("global", "iq_listen", bad[i], want);
    }
    set_gives("global", "iq_listen", "127.0.0.1:65536",
              "key 'iq_listen' in [global]: port 65536 is out of range 0..65535");
    set_gives("global", "iq_listen", "", "key 'iq_listen' in [global]: a value is required");
    /* An MGC needs a real port. */
    set_gives("global", "mgc", "127.0.0.1:0",
              "key 'mgc' in [global]: port 0 is out of range 1..65535");
}
END_TEST

START_TEST(test_addr_and_ports)
{
    struct agw_config cfg = set_ok("realm access", "address", "::1");
    ck_assert_int_eq(cfg.realms[0].address.ss_family, AF_INET6);
    ck_assert_str_eq(addr_text(&cfg.realms[0].address, false), "::1");
    cfg = set_ok("realm access", "address", "192.0.2.7");
    ck_assert_str_eq(addr_text(&cfg.realms[0].address, false), "192.0.2.7");
    cfg = set_ok("realm access", "address", "::ffff:192.0.2.7");
    ck_assert_int_eq(cfg.realms[0].address.ss_family, AF_INET6);

    static const char *const bad[] = {"[::1]", "1.2.3", "fe80::1%eth0", "host", "1.2.3.4:5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want),
                 "key 'address' in [realm access]: '%s' is not an IPv4 or IPv6 address", bad[i]);
        set_gives("realm access", "address", bad[i], want);
    }
    set_gives("realm access", "address", "",
              "key 'address' in [realm access]: a value is required");

    cfg = set_ok("realm access", "ports", "1-65535");
    ck_assert_uint_eq(cfg.realms[0].ports.low, 1);
    ck_assert_uint_eq(cfg.realms[0].ports.high, 65535);
    cfg = set_ok("realm access", "ports", "5000");
    ck_assert_uint_eq(cfg.realms[0].ports.low, 5000);
    ck_assert_uint_eq(cfg.realms[0].ports.high, 5000);
    set_gives("realm access", "ports", "0-10",
              "key 'ports' in [realm access]: 0 is out of range 1..65535");
    set_gives("realm access", "ports", "20000-70000",
              "key 'ports' in [realm access]: 70000 is out of range 1..65535");
    set_gives("realm access", "ports", "30000-20000",
              "key 'ports' in [realm access]: low port 30000 is above high port 20000");
    static const char *const bad_ranges[] = {"abc", "-5", "5-", "1-2-3", "1..2", "1 - 2"};
    for (size_t i = 0; i < sizeof(bad_ranges) / sizeof(bad_ranges[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want),
                 "key 'ports' in [realm access]: '%s' is not a port range (low-high)",
                 bad_ranges[i]);
        set_gives("realm access", "ports", bad_ranges[i], want);
    }
    set_gives("realm access", "ports", "", "key 'ports' in [realm access]: a value is required");
}
END_TEST

START_TEST(test_strings)
{
    static const char *const mids[] = {
        "[10.0.0.1]:2944",   "[2001:db8::1]:2944", "<agw.example.com>:2944",
        "<agw.example.com>", "[10.0.0.1]",         "agw1/rack_2"};
    for (size_t i = 0; i < sizeof(mids) / sizeof(mids[0]); i++) {
        struct agw_config cfg = set_ok("global", "mid", mids[i]);
        ck_assert_str_eq(cfg.mid, mids[i]);
        char mid[80];
        agw_config_mid(&cfg, mid, sizeof(mid));
        ck_assert_str_eq(mid, mids[i]);
    }
    static const char *const bad_mids[] = {"10.0.0.1:2944", "[10.0.0.1", "<>",   "[1.2.3.4]:0",
                                           "[1.2.3.4]:",    "<a b>",     "1agw", "agw name"};
    for (size_t i = 0; i < sizeof(bad_mids) / sizeof(bad_mids[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want),
                 "key 'mid' in [global]: '%s' is not an H.248 mId ([address]:port, "
                 "<domain>:port or a device name)",
                 bad_mids[i]);
        set_gives("global", "mid", bad_mids[i], want);
    }
    struct agw_config cfg = set_ok("global", "mid", "  "); /* empty: derived */
    ck_assert_str_eq(cfg.mid, "");
    char long_mid[80];
    memset(long_mid, 'a', 64);
    long_mid[64] = '\0';
    char want[256];
    snprintf(want, sizeof(want), "key 'mid' in [global]: '%s' is longer than 63 characters",
             long_mid);
    set_gives("global", "mid", long_mid, want);
    long_mid[63] = '\0';
    cfg = set_ok("global", "mid", long_mid);
    ck_assert_uint_eq(strlen(cfg.mid), 63);

    cfg = set_ok("global", "profile", "ETSI_tgw2/12");
    ck_assert_str_eq(cfg.profile, "ETSI_tgw2/12");
    static const char *const bad_profiles[] = {"threegiq",  "3giq/1", "threegiq/123", "three-giq/1",
                                               "threegiq/", "/1",     "threegiq/1a"};
    for (size_t i = 0; i < sizeof(bad_profiles) / sizeof(bad_profiles[0]); i++) {
        snprintf(want, sizeof(want),
                 "key 'profile' in [global]: '%s' is not a profile name/version such as "
                 "threegiq/1",
                 bad_profiles[i]);
        set_gives("global", "profile", bad_profiles[i], want);
    }
    set_gives("global", "profile", "", "key 'profile' in [global]: a value is required");

    cfg = set_ok("global", "default_realm", "core");
    ck_assert_str_eq(cfg.default_realm, "core");
    set_gives("global", "default_realm", "Access",
              "key 'default_realm' in [global]: 'Access' is not a realm name (1..31 characters "
              "of a-z, 0-9, _ and -)");
    set_gives("global", "default_realm", "abcdefghijklmnopqrstuvwxyz012345",
              "key 'default_realm' in [global]: 'abcdefghijklmnopqrstuvwxyz012345' is longer "
              "than 31 characters");
    set_gives("global", "default_realm", "",
              "key 'default_realm' in [global]: a value is required");

    cfg = set_ok("realm core", "certificate", "/etc/ims-agw/core cert.pem");
    ck_assert_str_eq(cfg.realms[1].certificate, "/etc/ims-agw/core cert.pem");
    set_gives("realm core", "certificate", "/etc/a;b.pem",
              "key 'certificate' in [realm core]: '/etc/a;b.pem' is not a usable path (no ';', "
              "control characters or outer blanks)");
    set_gives("realm core", "private_key", "/etc/a\tb",
              "key 'private_key' in [realm core]: '/etc/a\tb' is not a usable path (no ';', "
              "control characters or outer blanks)");
    char long_path[200];
    memset(long_path, 'p', 176);
    long_path[0] = '/';
    long_path[176] = '\0';
    snprintf(want, sizeof(want),
             "key 'private_key' in [realm core]: '%.80s' is longer than 175 characters", long_path);
    set_gives("realm core", "private_key", long_path, want);
}
END_TEST

START_TEST(test_set_errors)
{
    set_gives("global", "bogus", "1", "unknown key 'bogus' in [global]");
    set_gives("global", "address", "::1", "unknown key 'address' in [global]");
    set_gives("realm access", "workers", "2", "unknown key 'workers' in [realm access]");
    set_gives("globals", "workers", "2",
              "unknown section [globals] (expected [global] or [realm NAME])");
    set_gives("realm", "address", "::1",
              "unknown section [realm] (expected [global] or [realm NAME])");
    set_gives("realm Core", "address", "::1",
              "section [realm Core]: 'Core' is not a realm name (1..31 characters of a-z, 0-9, "
              "_ and -)");

    /* A new realm comes with the defaults of its optional keys; its required ones are missing. */
    struct agw_config cfg = set_ok("realm edge_1", "address", "10.9.9.9");
    ck_assert_uint_eq(cfg.realm_count, 3);
    ck_assert_str_eq(cfg.realms[2].name, "edge_1");
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "key 'ports' in [realm edge_1] is required");
    ck_assert_int_eq(agw_config_set(&cfg, "realm edge_1", "ports", "40000-40099", err, sizeof(err)),
                     0);
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), 0);

    /* At most 8 realms. */
    agw_config_init_defaults(&cfg);
    for (int i = 0; i < 6; i++) {
        char section[32];
        snprintf(section, sizeof(section), "realm r%d", i);
        ck_assert_int_eq(agw_config_set(&cfg, section, "address", "10.0.0.1", err, sizeof(err)), 0);
    }
    ck_assert_uint_eq(cfg.realm_count, 8);
    ck_assert_int_eq(agw_config_set(&cfg, "realm r9", "address", "10.0.0.1", err, sizeof(err)),
                     -EINVAL);
    ck_assert_str_eq(err, "section [realm r9]: more than 8 realms");
}
END_TEST

/* ---- the mgc list ---- */

START_TEST(test_mgc_list)
{
    struct agw_config cfg;
    /* The file's first mgc replaces the default; later ones and comma lists append in order. */
    ck_assert_int_eq(load_text(&cfg, "[global]\n"
                                     "mgc = 127.0.0.2:2947\n"
                                     "log_level = debug\n"
                                     "mgc = 127.0.0.3:2948 , 127.0.0.4:2949,127.0.0.5:1\n"),
                     0);
    ck_assert_uint_eq(cfg.mgc_count, 4);
    ck_assert_str_eq(addr_text(&cfg.mgc[0], true), "127.0.0.2:2947");
    ck_assert_str_eq(addr_text(&cfg.mgc[1], true), "127.0.0.3:2948");
    ck_assert_str_eq(addr_text(&cfg.mgc[2], true), "127.0.0.4:2949");
    ck_assert_str_eq(addr_text(&cfg.mgc[3], true), "127.0.0.5:1");
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), 0);

    /* Exactly 8 is fine, in any mix of the two forms. */
    ck_assert_int_eq(load_text(&cfg, "[global]\n"
                                     "mgc = 10.0.0.1:1, 10.0.0.2:1, 10.0.0.3:1\n"
                                     "mgc = 10.0.0.4:1\n"
                                     "mgc = 10.0.0.5:1,10.0.0.6:1,10.0.0.7:1,10.0.0.8:1\n"),
                     0);
    ck_assert_uint_eq(cfg.mgc_count, 8);
    ck_assert_str_eq(addr_text(&cfg.mgc[7], true), "10.0.0.8:1");
    load_fails("[global]\n"
               "mgc = 10.0.0.1:1, 10.0.0.2:1, 10.0.0.3:1, 10.0.0.4:1\n"
               "mgc = 10.0.0.5:1,10.0.0.6:1,10.0.0.7:1,10.0.0.8:1\n"
               "mgc = 10.0.0.9:1\n",
               "4: key 'mgc' in [global]: more than 8 addresses");
    load_fails("[global]\nmgc = 10.0.0.1:1, 10.0.0.2:1, 10.0.0.3:1, 10.0.0.4:1, 10.0.0.5:1, "
               "10.0.0.6:1, 10.0.0.7:1, 10.0.0.8:1, 10.0.0.9:1\n",
               "2: key 'mgc' in [global]: more than 8 addresses");
    load_fails("[global]\nmgc = 10.0.0.1:1,,10.0.0.2:1\n",
               "2: key 'mgc' in [global]: empty address in the list");
    load_fails("[global]\nmgc = 10.0.0.1:1,\n",
               "2: key 'mgc' in [global]: empty address in the list");
    load_fails("[global]\nmgc = 10.0.0.1:1, nonsense\n",
               "2: key 'mgc' in [global]: 'nonsense' is not an address:port (a.b.c.d:port or "
               "[v6]:port)");
    load_fails("[global]\nmgc =\n", "2: key 'mgc' in [global]: a value is required");

    /* IPv6 MGCs with an IPv6 Iq address. */
    ck_assert_int_eq(load_text(&cfg, "[global]\niq_listen = [::1]:2944\n"
                                     "mgc = [::1]:2947, [2001:db8::5]:2947\n"),
                     0);
    ck_assert_uint_eq(cfg.mgc_count, 2);
    ck_assert_str_eq(addr_text(&cfg.mgc[1], true), "[2001:db8::5]:2947");
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), 0);

    validate_gives("[global]\nmgc = [::1]:2947\n",
                   "mgc [::1]:2947 and iq_listen 127.0.0.1:2944 are of different address families");
    validate_gives("[global]\nmgc = 127.0.0.2:2947, 127.0.0.3:2947, 127.0.0.2:2947\n",
                   "mgc 127.0.0.2:2947 is listed twice");

    /* agw_config_set appends. */
    agw_config_init_defaults(&cfg);
    ck_assert_int_eq(agw_config_set(&cfg, "global", "mgc", "127.0.0.9:9", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.mgc_count, 2);
    ck_assert_str_eq(addr_text(&cfg.mgc[1], true), "127.0.0.9:9");

    memset(&cfg, 0, sizeof(cfg));
    agw_config_init_defaults(&cfg);
    cfg.mgc_count = 0;
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "key 'mgc' in [global]: at least one address is required");
}
END_TEST

/* ---- the file ---- */

START_TEST(test_file_errors)
{
    load_fails("[global]\nfoo = 1\n", "2: unknown key 'foo' in [global]");
    load_fails("; realm\n[realm access]\nadress = 1.2.3.4\n",
               "3: unknown key 'adress' in [realm access]");
    load_fails("[global]\nworkers = 2\n[relams]\nx = 1\n",
               "3: unknown section [relams] (expected [global] or [realm NAME])");
    /* A section without keys is an error too (inih alone would not say). */
    load_fails("[global]\n[bogus]\n",
               "2: unknown section [bogus] (expected [global] or [realm NAME])");
    load_fails("[realm Edge]\naddress = ::1\n",
               "1: section [realm Edge]: 'Edge' is not a realm name (1..31 characters of a-z, "
               "0-9, _ and -)");
    load_fails("[global]\nworkers = 2\n; again\nworkers = 3\n",
               "4: key 'workers' in [global]: duplicate key (first set on line 2)");
    load_fails("[realm access]\naddress = ::1\nports = 1-2\n[global]\nworkers = 2\n"
               "[realm access]\nports = 3-4\n",
               "7: key 'ports' in [realm access]: duplicate key (first set on line 3)");
    load_fails("workers = 2\n",
               "1: key 'workers' comes before any section ([global] or [realm NAME])");
    load_fails("[global]\nworkers\n",
               "2: syntax error: expected [section], key = value or a comment");
    load_fails("[global\nworkers = 2\n",
               "1: syntax error: expected [section], key = value or a comment");
    load_fails("\xef\xbb\xbf[global]\nworkers = 0\n",
               "2: key 'workers' in [global]: 0 is out of range 1..64");
    /* The message of the brief, on line 12. */
    load_fails("; 1\n; 2\n; 3\n[global]\nworkers = 2\n\n# 7\n[realm access]\n"
               "address = 127.0.0.1\n; 10\n\nports = 20000-70000\n",
               "12: key 'ports' in [realm access]: 70000 is out of range 1..65535");
    /* The first error wins, whichever kind it is. */
    load_fails("[global]\nworkers = 0\nnonsense\n",
               "2: key 'workers' in [global]: 0 is out of range 1..64");
    load_fails("[global]\nnonsense\nworkers = 0\n",
               "2: syntax error: expected [section], key = value or a comment");
    load_fails("[global]\nworkers = 0\n[bogus]\n",
               "2: key 'workers' in [global]: 0 is out of range 1..64");

    /* Too long for inih's 200-byte line buffer: refused rather than split. */
    char text[400];
    int n = snprintf(text, sizeof(text), "[global]\n; ");
    memset(text + n, 'x', 250);
    snprintf(text + n + 250, sizeof(text) - (size_t)n - 250, "\nworkers = 2\n");
    load_fails(text, "2: line longer than 199 characters");
    n = snprintf(text, sizeof(text), "[global]\n;");
    memset(text + n, 'x', 198); /* a 199-character line fits */
    snprintf(text + n + 198, sizeof(text) - (size_t)n - 198, "\nworkers = 0\n");
    load_fails(text, "3: key 'workers' in [global]: 0 is out of range 1..64");

    /* A NUL byte. */
    struct agw_config cfg;
    static const char nul[] = "[global]\nworkers = 2\0junk\n";
    write_file("nul.conf", nul, sizeof(nul) - 1, path_buf, sizeof(path_buf));
    agw_config_init_defaults(&cfg);
    ck_assert_int_eq(agw_config_load_file(&cfg, path_buf, err, sizeof(err)), -EINVAL);
    char want[600];
    snprintf(want, sizeof(want), "%s:2: NUL byte in the line", path_buf);
    ck_assert_str_eq(err, want);

    /* A missing file. */
    snprintf(path_buf, sizeof(path_buf), "%s/absent.conf", tmpdir);
    ck_assert_int_eq(agw_config_load_file(&cfg, path_buf, err, sizeof(err)), -ENOENT);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path_buf);
    ck_assert_str_eq(err, want);

    /* An empty file changes nothing. */
    struct agw_config defaults;
    agw_config_init_defaults(&defaults);
    ck_assert_int_eq(load_text(&cfg, ""), 0);
    ck_assert(agw_config_equal(&cfg, &defaults));
}
END_TEST

START_TEST(test_file_syntax)
{
    struct agw_config cfg;
    /* Inline ';' comments need a blank before them; '#' only starts a line; CRLF; indentation;
     * blanks around a realm name. */
    ck_assert_int_eq(load_text(&cfg, "# hash comment\r\n"
                                     "[global] ; section comment\r\n"
                                     "  workers = 3 ; three\r\n"
                                     "\tmid = ; derived\n"
                                     "max_contexts=12;\n"
                                     "[realm  edge ]\n"
                                     "    address = ::1\n"
                                     "    ports = 40000-40009\n"),
                     -EINVAL);
    /* "12;" is not a number: ';' without a blank before it is part of the value. */
    char want[600];
    snprintf(want, sizeof(want), "%s:5: key 'max_contexts' in [global]: '12;' is not a number",
             path_buf);
    ck_assert_str_eq(err, want);

    ck_assert_int_eq(load_text(&cfg, "# hash comment\r\n"
                                     "[global] ; section comment\r\n"
                                     "  workers = 3 ; three\r\n"
                                     "\tmid = ; derived\n"
                                     "max_contexts=12\n"
                                     "default_realm = edge\n"
                                     "[realm  edge ]\n"
                                     "    address = ::1\n"
                                     "    ports = 40000-40009\n"
                                     "certificate = /etc/c.pem ; a comment\n"
                                     "private_key = /etc/k.pem\n"),
                     0);
    ck_assert_uint_eq(cfg.workers, 3);
    ck_assert_str_eq(cfg.mid, "");
    ck_assert_uint_eq(cfg.max_contexts, 12);
    /* The file's realms replace the default ones. */
    ck_assert_uint_eq(cfg.realm_count, 1);
    ck_assert_str_eq(cfg.realms[0].name, "edge");
    ck_assert_str_eq(addr_text(&cfg.realms[0].address, false), "::1");
    ck_assert_uint_eq(cfg.realms[0].ports.low, 40000);
    ck_assert_uint_eq(cfg.realms[0].ports.high, 40009);
    ck_assert_str_eq(cfg.realms[0].certificate, "/etc/c.pem");
    ck_assert_str_eq(cfg.realms[0].private_key, "/etc/k.pem");
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), 0);

    /* Without [realm] sections, the realms loaded over stay. */
    ck_assert_int_eq(load_text(&cfg, "[global]\nlog_level = warn\n"), 0);
    ck_assert_uint_eq(cfg.realm_count, 2);
    ck_assert_int_eq(cfg.log_level, AGW_LOG_WARN);

    /* The same key in two realms is no duplicate; nine realms are too many. */
    ck_assert_int_eq(load_text(&cfg, "[realm a]\nports = 1-2\n[realm b]\nports = 1-2\n"), 0);
    char text[1024] = "";
    for (int i = 0; i < 9; i++) {
        char line[64];
        snprintf(line, sizeof(line), "[realm r%d]\naddress = 10.0.0.%d\n", i, i + 1);
        strcat(text, line);
    }
    load_fails(text, "18: section [realm r8]: more than 8 realms");
}
END_TEST

/* ---- cross-field checks ---- */

static const char two_realms[] = "[global]\n"
                                 "default_realm = a\n"
                                 "[realm a]\n"
                                 "address = %s\n"
                                 "ports = %s\n"
                                 "[realm b]\n"
                                 "address = %s\n"
                                 "ports = %s\n";

static void realms_give(const char *addr_a, const char *ports_a, const char *addr_b,
                        const char *ports_b, const char *want)
{
    char text[512];
    snprintf(text, sizeof(text), two_realms, addr_a, ports_a, addr_b, ports_b);
    validate_gives(text, want);
}

START_TEST(test_port_overlap)
{
    realms_give("127.0.0.1", "20000-29999", "127.0.0.1", "30000-39999", "");
    realms_give("127.0.0.1", "20000-30000", "127.0.0.1", "30000-39999",
                "ports of [realm a] (127.0.0.1 20000-30000) and [realm b] (127.0.0.1 "
                "30000-39999) overlap");
    realms_give("127.0.0.1", "20000-29999", "127.0.0.1", "25000",
                "ports of [realm a] (127.0.0.1 20000-29999) and [realm b] (127.0.0.1 "
                "25000-25000) overlap");
    realms_give("127.0.0.1", "30000-39999", "127.0.0.1", "1-65535",
                "ports of [realm a] (127.0.0.1 30000-39999) and [realm b] (127.0.0.1 "
                "1-65535) overlap");
    /* Other addresses, other families: no conflict. */
    realms_give("127.0.0.1", "20000-29999", "127.0.0.2", "20000-29999", "");
    realms_give("127.0.0.1", "20000-29999", "::1", "20000-29999", "");
    /* A wildcard address covers its whole family. */
    realms_give("0.0.0.0", "20000-29999", "127.0.0.2", "29999-39999",
                "ports of [realm a] (0.0.0.0 20000-29999) and [realm b] (127.0.0.2 "
                "29999-39999) overlap");
    realms_give("::1", "20000-29999", "::", "20000",
                "ports of [realm a] (::1 20000-29999) and [realm b] (:: 20000-20000) overlap");
    /* The Iq port may not sit inside a realm's range on the same address. */
    realms_give("127.0.0.1", "2000-3000", "127.0.0.2", "2000-3000",
                "iq_listen 127.0.0.1:2944 is inside ports 2000-3000 of [realm a]");
}
END_TEST

START_TEST(test_validate_checks)
{
    validate_gives("[global]\ndefault_realm = edge\n",
                   "default_realm 'edge' is not a configured realm");
    validate_gives("[realm core]\naddress = 127.0.0.1\nports = 1000-2000\n",
                   "default_realm 'access' is not a configured realm");
    validate_gives("[global]\ndefault_realm = core\n[realm core]\naddress = 127.0.0.1\n",
                   "key 'ports' in [realm core] is required");
    validate_gives("[global]\ndefault_realm = core\n[realm core]\nports = 1000-2000\n",
                   "key 'address' in [realm core] is required");
    validate_gives("[realm access]\ncertificate = /etc/c.pem\n",
                   "key 'address' in [realm access] is required");
    validate_gives("[global]\n[realm access]\naddress = ::1\nports = 1-2\ncertificate = /c.pem\n",
                   "[realm access]: certificate and private_key go together (both set or both "
                   "empty)");
    validate_gives("[global]\nmg_min_rto_ms = 600\n",
                   "retransmission timeouts must grow: mg_min_rto_ms 600 <= mg_initial_rto_ms "
                   "500 <= mg_max_rto_ms 4000");
    validate_gives("[global]\nmg_max_rto_ms = 499\n",
                   "retransmission timeouts must grow: mg_min_rto_ms 100 <= mg_initial_rto_ms "
                   "500 <= mg_max_rto_ms 499");
    validate_gives("[global]\nmg_min_rto_ms = 500\nmg_max_rto_ms = 500\n", "");

    struct agw_config cfg;
    agw_config_init_defaults(&cfg);
    cfg.realm_count = 0;
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "no realm: at least one [realm NAME] is required");
}
END_TEST

/* ---- the command line ---- */

START_TEST(test_cli_overrides_file)
{
    char path[512];
    static const char file[] = "[global]\n"
                               "workers = 2\n"
                               "log_level = warn\n"
                               "max_contexts = 50\n"
                               "mgc = 127.0.0.5:2947, 127.0.0.6:2947\n";
    write_file("cli.conf", file, strlen(file), path, sizeof(path));

    /* Options before and after -c: the file is read first either way. */
    char *before[] = {"ims-agw", "--workers", "4", "--log-level=debug", "-c", path, NULL};
    char *after[] = {"ims-agw", "-c", path, "--workers", "4", "--log-level", "debug", NULL};
    char **orders[] = {before, after};
    int counts[] = {ARGC(before) - 1, ARGC(after) - 1};
    for (int i = 0; i < 2; i++) {
        struct agw_config cfg;
        struct agw_config_cli cli;
        ck_assert_msg(parse(&cfg, &cli, counts[i], orders[i]) == 0, "%s", err);
        ck_assert_str_eq(cli.config_path, path);
        ck_assert_uint_eq(cfg.workers, 4);
        ck_assert_int_eq(cfg.log_level, AGW_LOG_DEBUG);
        ck_assert_uint_eq(cfg.max_contexts, 50); /* from the file */
        ck_assert_uint_eq(cfg.mgc_count, 2);
        ck_assert_str_eq(addr_text(&cfg.mgc[1], true), "127.0.0.6:2947");
    }

    /* The first --mgc replaces the file's list, later ones append; last scalar wins. */
    char *mgcs[] = {"ims-agw",
                    "--mgc",
                    "127.0.0.9:1",
                    "-c",
                    path,
                    "--mgc",
                    "127.0.0.10:1,127.0.0.11:1",
                    "--max-contexts",
                    "7",
                    "--max-contexts",
                    "8",
                    NULL};
    struct agw_config cfg;
    struct agw_config_cli cli;
    ck_assert_msg(parse(&cfg, &cli, ARGC(mgcs) - 1, mgcs) == 0, "%s", err);
    ck_assert_uint_eq(cfg.mgc_count, 3);
    ck_assert_str_eq(addr_text(&cfg.mgc[0], true), "127.0.0.9:1");
    ck_assert_str_eq(addr_text(&cfg.mgc[2], true), "127.0.0.11:1");
    ck_assert_uint_eq(cfg.max_contexts, 8);

    /* Parsing the same argv again (a reload) gives the same configuration. */
    struct agw_config again;
    ck_assert_msg(parse(&again, &cli, ARGC(mgcs) - 1, mgcs) == 0, "%s", err);
    ck_assert(agw_config_equal(&cfg, &again));

    /* Every [global] key has its --key-with-dashes option. */
    char *all[] = {"ims-agw",
                   "--iq-listen",
                   "[::1]:2950",
                   "--mgc",
                   "[::1]:2947",
                   "--mid",
                   "<agw.example.org>:2950",
                   "--profile",
                   "threegiq/2",
                   "--workers",
                   "auto",
                   "--log-level",
                   "error",
                   "--max-contexts",
                   "9",
                   "--max-terminations-per-context",
                   "2",
                   "--default-realm",
                   "core",
                   "--long-timer-ms",
                   "20000",
                   "--provisional-timer-ms",
                   "200",
                   "--mg-initial-rto-ms",
                   "300",
                   "--mg-min-rto-ms",
                   "200",
                   "--mg-max-rto-ms",
                   "5000",
                   "--mg-max-retransmissions",
                   "3",
                   "--relay-buffer-bytes",
                   "8192",
                   "--handshake-timeout-ms",
                   "1500",
                   NULL};
    ck_assert_msg(parse(&cfg, &cli, ARGC(all) - 1, all) == 0, "%s", err);
    ck_assert_str_eq(addr_text(&cfg.iq_listen, true), "[::1]:2950");
    ck_assert_str_eq(cfg.mid, "<agw.example.org>:2950");
    ck_assert_str_eq(cfg.profile, "threegiq/2");
    ck_assert_uint_eq(cfg.workers, 0);
    ck_assert_int_eq(cfg.log_level, AGW_LOG_ERROR);
    ck_assert_uint_eq(cfg.max_terminations_per_context, 2);
    ck_assert_str_eq(cfg.default_realm, "core");
    ck_assert_uint_eq(cfg.long_timer_ms, 20000);
    ck_assert_uint_eq(cfg.provisional_timer_ms, 200);
    ck_assert_uint_eq(cfg.mg_initial_rto_ms, 300);
    ck_assert_uint_eq(cfg.mg_min_rto_ms, 200);
    ck_assert_uint_eq(cfg.mg_max_rto_ms, 5000);
    ck_assert_uint_eq(cfg.mg_max_retransmissions, 3);
    ck_assert_uint_eq(cfg.relay_buffer_bytes, 8192);
    ck_assert_uint_eq(cfg.handshake_timeout_ms, 1500);
}
END_TEST

START_TEST(test_cli_errors)
{
    struct agw_config cfg;
    struct agw_config_cli cli;
    char path[512];
    write_file("ok.conf", "[global]\n", 9, path, sizeof(path));

    char *range[] = {"ims-agw", "--max-contexts", "0", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 3, range), -EINVAL);
    ck_assert_str_eq(err, "option --max-contexts: 0 is out of range 1..1000000");
    char *unknown[] = {"ims-agw", "--bogus", "1", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 3, unknown), -EINVAL);
    ck_assert_str_eq(err, "unknown or ambiguous option '--bogus'");
    char *realm_key[] = {"ims-agw", "--address", "::1", NULL}; /* realm keys go via --realm */
    ck_assert_int_eq(parse(&cfg, &cli, 3, realm_key), -EINVAL);
    ck_assert_str_eq(err, "unknown or ambiguous option '--address'");
    char *short_unknown[] = {"ims-agw", "-x", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 2, short_unknown), -EINVAL);
    ck_assert_str_eq(err, "unknown option '-x'");
    char *missing[] = {"ims-agw", "--workers", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 2, missing), -EINVAL);
    ck_assert_str_eq(err, "option '--workers' needs a value");
    char *missing_c[] = {"ims-agw", "-c", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 2, missing_c), -EINVAL);
    ck_assert_str_eq(err, "option '-c' needs a value");
    char *flag_value[] = {"ims-agw", "--test=yes", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 2, flag_value), -EINVAL);
    ck_assert_str_eq(err, "option '--test=yes' takes no value");
    char *extra[] = {"ims-agw", "stray", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 2, extra), -EINVAL);
    ck_assert_str_eq(err, "unexpected argument 'stray'");
    char *twice[] = {"ims-agw", "-c", path, "-c", path, NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 5, twice), -EINVAL);
    ck_assert_str_eq(err, "option -c given twice");

    char absent[600];
    snprintf(absent, sizeof(absent), "%s/absent.conf", tmpdir);
    char *no_file[] = {"ims-agw", "-c", absent, NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 3, no_file), -ENOENT);
    char want[700];
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", absent);
    ck_assert_str_eq(err, want);

    /* -h and -V answer before the file is read. */
    char *help[] = {"ims-agw", "-c", absent, "-h", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 4, help), 0);
    ck_assert(cli.help);
    char *version[] = {"ims-agw", "--version", "--max-contexts", "0", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 4, version), 0);
    ck_assert(cli.version);

    /* Cross-field errors come out of parse_args too. */
    char *invalid[] = {"ims-agw", "--default-realm", "edge", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, 3, invalid), -EINVAL);
    ck_assert_str_eq(err, "default_realm 'edge' is not a configured realm");
}
END_TEST

START_TEST(test_cli_realm)
{
    char path[512];
    static const char file[] = "[realm access]\n"
                               "address = 127.0.0.1\n"
                               "ports = 20000-29999\n"
                               "certificate = /etc/c.pem\n"
                               "private_key = /etc/k.pem\n"
                               "[realm core]\n"
                               "address = 127.0.0.1\n"
                               "ports = 30000-39999\n";
    write_file("realm.conf", file, strlen(file), path, sizeof(path));
    char *argv[] = {"ims-agw",
                    "--realm",
                    "edge,10.0.0.1,40000-40999",
                    "--realm",
                    "access,::1,20000-20999",
                    "-c",
                    path,
                    NULL};
    struct agw_config cfg;
    struct agw_config_cli cli;
    ck_assert_msg(parse(&cfg, &cli, ARGC(argv) - 1, argv) == 0, "%s", err);
    ck_assert_uint_eq(cfg.realm_count, 3);
    /* Replaced in place: new address and ports, the file's certificate kept. */
    ck_assert_str_eq(cfg.realms[0].name, "access");
    ck_assert_int_eq(cfg.realms[0].address.ss_family, AF_INET6);
    ck_assert_str_eq(addr_text(&cfg.realms[0].address, false), "::1");
    ck_assert_uint_eq(cfg.realms[0].ports.low, 20000);
    ck_assert_uint_eq(cfg.realms[0].ports.high, 20999);
    ck_assert_str_eq(cfg.realms[0].certificate, "/etc/c.pem");
    ck_assert_str_eq(cfg.realms[1].name, "core");
    ck_assert_uint_eq(cfg.realms[1].ports.low, 30000);
    /* Added at the end. */
    ck_assert_str_eq(cfg.realms[2].name, "edge");
    ck_assert_str_eq(addr_text(&cfg.realms[2].address, false), "10.0.0.1");
    ck_assert_uint_eq(cfg.realms[2].ports.low, 40000);
    ck_assert_uint_eq(cfg.realms[2].ports.high, 40999);
    ck_assert_str_eq(cfg.realms[2].certificate, "");

    static const struct {
        const char *arg, *want;
    } bad[] = {
        {"edge,10.0.0.1", "option --realm: 'edge,10.0.0.1' is not NAME,ADDRESS,LOW-HIGH"},
        {"edge,10.0.0.1,1-2,x",
         "option --realm: 'edge,10.0.0.1,1-2,x' is not NAME,ADDRESS,LOW-HIGH"},
        {"Edge,10.0.0.1,1-2",
         "option --realm: 'Edge' is not a realm name (1..31 characters of a-z, 0-9, _ and -)"},
        {",10.0.0.1,1-2",
         "option --realm: '' is not a realm name (1..31 characters of a-z, 0-9, _ and -)"},
        {"edge,[::1],1-2",
         "option --realm: key 'address' in [realm edge]: '[::1]' is not an IPv4 or IPv6 address"},
        {"edge,::1,0-5", "option --realm: key 'ports' in [realm edge]: 0 is out of range 1..65535"},
        {"edge,::1,", "option --realm: key 'ports' in [realm edge]: a value is required"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *args[] = {"ims-agw", "--realm", (char *)bad[i].arg, NULL};
        ck_assert_int_eq(parse(&cfg, &cli, 3, args), -EINVAL);
        ck_assert_str_eq(err, bad[i].want);
    }
    char *many[] = {"ims-agw",    "--realm", "r1,::1,1-1", "--realm", "r2,::1,2-2", "--realm",
                    "r3,::1,3-3", "--realm", "r4,::1,4-4", "--realm", "r5,::1,5-5", "--realm",
                    "r6,::1,6-6", "--realm", "r7,::1,7-7", NULL};
    ck_assert_int_eq(parse(&cfg, &cli, ARGC(many) - 1, many), -EINVAL);
    ck_assert_str_eq(err, "option --realm: section [realm r7]: more than 8 realms");
}
END_TEST

/* ---- printing ---- */

/* Prints cfg, loads the text over an all-zero config, and checks both are equal. */
static void round_trip(const struct agw_config *cfg)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/printed.conf", tmpdir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    agw_config_print(cfg, f);
    ck_assert_int_eq(fclose(f), 0);

    struct agw_config back;
    memset(&back, 0, sizeof(back));
    int rc = agw_config_load_file(&back, path, err, sizeof(err));
    ck_assert_msg(rc == 0, "printed config does not load: %s", err);
    ck_assert_msg(agw_config_equal(cfg, &back), "printed config loads differently");
    ck_assert_int_eq(agw_config_validate(&back, err, sizeof(err)), 0);
}

START_TEST(test_print_round_trip)
{
    struct agw_config cfg;
    agw_config_init_defaults(&cfg);
    round_trip(&cfg);

    /* Everything off its default, at its longest: IPv6 everywhere, 8 MGCs, 8 realms, paths. */
    static const char text[] =
        "[global]\n"
        "iq_listen = [ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.254]:65535\n"
        "mgc = [ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.1]:65535, [::2]:1, [::3]:2\n"
        "mgc = [::4]:3, [::5]:4, [::6]:5, [::7]:6, [2001:db8::8]:7\n"
        "mid = <a.very.long.domain.name.of.the.gateway.example.com>:65535\n"
        "profile = threegiq_with_a_longer_name/99\n"
        "workers = 64\n"
        "log_level = debug\n"
        "max_contexts = 1000000\n"
        "max_terminations_per_context = 16\n"
        "default_realm = r7_abcdefghijklmnopqrstuvwxyz-0\n"
        "long_timer_ms = 600000\n"
        "provisional_timer_ms = 60000\n"
        "mg_initial_rto_ms = 60000\n"
        "mg_min_rto_ms = 10\n"
        "mg_max_rto_ms = 600000\n"
        "mg_max_retransmissions = 0\n"
        "relay_buffer_bytes = 16777216\n"
        "handshake_timeout_ms = 100\n";
    char big[8192];
    strcpy(big, text);
    char long_path[176];
    memset(long_path, 'k', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    static const char *const names[8] = {"a", "b", "c", "d",
                                         "e", "f", "g", "r7_abcdefghijklmnopqrstuvwxyz-0"};
    for (int i = 0; i < 8; i++) {
        char realm[512];
        snprintf(realm, sizeof(realm),
                 "[realm %s]\naddress = ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.%d\n"
                 "ports = %d-%d\ncertificate = /etc/ims agw/cert%d.pem\nprivate_key = %s\n",
                 names[i], i, 1000 * i + 1, 1000 * i + 999, i, long_path);
        strcat(big, realm);
    }
    ck_assert_msg(load_text(&cfg, big) == 0, "%s", err);
    ck_assert_uint_eq(cfg.realm_count, 8);
    ck_assert_uint_eq(cfg.mgc_count, 8);
    ck_assert_str_eq(cfg.realms[7].private_key, long_path);
    ck_assert_int_eq(agw_config_validate(&cfg, err, sizeof(err)), 0);
    round_trip(&cfg);

    /* The printed text names every key with its help, in the file format. */
    char *out = NULL;
    size_t out_len = 0;
    FILE *mem = open_memstream(&out, &out_len);
    ck_assert_ptr_nonnull(mem);
    agw_config_print(&cfg, mem);
    fclose(mem);
    ck_assert_ptr_nonnull(strstr(out, "\n[global]\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nworkers = 64\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nmgc = [2001:db8::8]:7\n"));
    ck_assert_ptr_nonnull(strstr(out, "\n[realm r7_abcdefghijklmnopqrstuvwxyz-0]\n"));
    ck_assert_ptr_nonnull(strstr(out, "\n; error, warn, info or debug [reloadable]\nlog_level = "
                                      "debug\n"));
    ck_assert_ptr_nonnull(strstr(out, "; Iq UDP address: a.b.c.d:port or [v6]:port [restart]\n"));
    free(out);
}
END_TEST

START_TEST(test_equal)
{
    /* Each key, changed alone, makes the configs differ (key_equal compares every type). */
    static const char *const changes[][3] = {
        {"global", "iq_listen", "127.0.0.1:2945"},
        {"global", "iq_listen", "[::ffff:127.0.0.1]:2944"},
        {"global", "mgc", "127.0.0.1:2948"},
        {"global", "mid", "[127.0.0.1]:2944"},
        {"global", "profile", "threegiq/2"},
        {"global", "workers", "1"},
        {"global", "log_level", "debug"},
        {"global", "max_contexts", "9999"},
        {"global", "max_terminations_per_context", "5"},
        {"global", "default_realm", "core"},
        {"global", "long_timer_ms", "30001"},
        {"global", "provisional_timer_ms", "501"},
        {"global", "mg_initial_rto_ms", "501"},
        {"global", "mg_min_rto_ms", "101"},
        {"global", "mg_max_rto_ms", "4001"},
        {"global", "mg_max_retransmissions", "8"},
        {"global", "relay_buffer_bytes", "65537"},
        {"global", "handshake_timeout_ms", "10001"},
        {"realm core", "address", "127.0.0.2"},
        {"realm core", "ports", "30000-39998"},
        {"realm core", "certificate", "/c.pem"},
        {"realm core", "private_key", "/k.pem"},
        {"realm edge", "address", "127.0.0.1"},
    };
    struct agw_config defaults;
    agw_config_init_defaults(&defaults);
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
        struct agw_config cfg = defaults;
        ck_assert(agw_config_equal(&cfg, &defaults));
        int rc =
            agw_config_set(&cfg, changes[i][0], changes[i][1], changes[i][2], err, sizeof(err));
        ck_assert_msg(rc == 0, "%s", err);
        ck_assert_msg(!agw_config_equal(&cfg, &defaults), "%s not compared", changes[i][1]);
        ck_assert_msg(!agw_config_equal(&defaults, &cfg), "%s not compared", changes[i][1]);
    }
    /* Realms are matched by name, not position. */
    struct agw_config swapped = defaults;
    swapped.realms[0] = defaults.realms[1];
    swapped.realms[1] = defaults.realms[0];
    ck_assert(agw_config_equal(&swapped, &defaults));
}
END_TEST

/* ---- reload ---- */

START_TEST(test_reload_check)
{
    struct agw_config old_cfg, new_cfg;
    agw_config_init_defaults(&old_cfg);
    new_cfg = old_cfg;
    ck_assert_int_eq(agw_config_reload_check(&old_cfg, &new_cfg, err, sizeof(err)), 0);
    ck_assert_str_eq(err, "");

    /* Reloadable: log level, limits, timers, the MGC list, certificates. */
    static const char *const reloadable[][3] = {
        {"global", "log_level", "debug"},
        {"global", "max_contexts", "5"},
        {"global", "max_terminations_per_context", "2"},
        {"global", "mgc", "127.0.0.1:3000"},
        {"global", "long_timer_ms", "10000"},
        {"global", "relay_buffer_bytes", "8192"},
        {"global", "default_realm", "core"},
        {"realm access", "certificate", "/c.pem"},
        {"realm access", "private_key", "/k.pem"},
    };
    for (size_t i = 0; i < sizeof(reloadable) / sizeof(reloadable[0]); i++)
        ck_assert_int_eq(agw_config_set(&new_cfg, reloadable[i][0], reloadable[i][1],
                                        reloadable[i][2], err, sizeof(err)),
                         0);
    ck_assert(!agw_config_equal(&old_cfg, &new_cfg));
    ck_assert_int_eq(agw_config_reload_check(&old_cfg, &new_cfg, err, sizeof(err)), 0);

    /* Not reloadable: named, each of them, and nothing else. */
    ck_assert_int_eq(
        agw_config_set(&new_cfg, "global", "iq_listen", "127.0.0.1:3944", err, sizeof(err)), 0);
    ck_assert_int_eq(
        agw_config_set(&new_cfg, "realm access", "address", "127.0.0.2", err, sizeof(err)), 0);
    ck_assert_int_eq(agw_config_reload_check(&old_cfg, &new_cfg, err, sizeof(err)), -EPERM);
    ck_assert_str_eq(err, "changes that need a restart: iq_listen, address in [realm access]");

    struct agw_config more = new_cfg;
    ck_assert_int_eq(agw_config_set(&more, "global", "workers", "2", err, sizeof(err)), 0);
    ck_assert_int_eq(agw_config_set(&more, "global", "mid", "agw1", err, sizeof(err)), 0);
    ck_assert_int_eq(agw_config_set(&more, "realm core", "ports", "30000-30001", err, sizeof(err)),
                     0);
    ck_assert_int_eq(agw_config_set(&more, "realm edge", "address", "::1", err, sizeof(err)), 0);
    ck_assert_int_eq(agw_config_reload_check(&old_cfg, &more, err, sizeof(err)), -EPERM);
    ck_assert_str_eq(err, "changes that need a restart: iq_listen, mid, workers, address in "
                          "[realm access], ports in [realm core], [realm edge] added");
    ck_assert_int_eq(agw_config_reload_check(&more, &old_cfg, err, sizeof(err)), -EPERM);
    ck_assert_ptr_nonnull(strstr(err, "[realm edge] removed"));
}
END_TEST

/* A reload takes the reloadable [global] keys of the new file and nothing else: what it gives
 * passes the reload check against the running configuration, and every reloadable key moved. */
START_TEST(test_take_reloadable)
{
    struct agw_config running, fresh, next;
    agw_config_init_defaults(&running);
    fresh = running;
    static const char *const keys[][3] = {
        {"global", "log_level", "debug"},
        {"global", "max_contexts", "5"},
        {"global", "max_terminations_per_context", "2"},
        {"global", "default_realm", "core"},
        {"global", "long_timer_ms", "10000"},
        {"global", "provisional_timer_ms", "300"},
        {"global", "mg_initial_rto_ms", "200"},
        {"global", "mg_min_rto_ms", "50"},
        {"global", "mg_max_rto_ms", "900"},
        {"global", "mg_max_retransmissions", "3"},
        {"global", "relay_buffer_bytes", "8192"},
        {"global", "handshake_timeout_ms", "2000"},
        /* Restart-only: must not move. */
        {"global", "iq_listen", "127.0.0.1:3944"},
        {"global", "workers", "3"},
        {"global", "mid", "agw1"},
        {"realm access", "certificate", "/c.pem"},
        {"realm access", "private_key", "/k.pem"},
        {"realm core", "ports", "30000-30001"},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ck_assert_int_eq(
            agw_config_set(&fresh, keys[i][0], keys[i][1], keys[i][2], err, sizeof(err)), 0);
    /* A list of two replaces a list of one. */
    fresh.mgc_count = 0;
    ck_assert_int_eq(
        agw_config_set(&fresh, "global", "mgc", "127.0.0.1:3001, 127.0.0.1:3002", err, sizeof(err)),
        0);
    next = running;
    agw_config_take_reloadable(&next, &fresh);
    ck_assert_int_eq(agw_config_reload_check(&running, &next, err, sizeof(err)), 0);
    ck_assert_int_eq(next.log_level, AGW_LOG_DEBUG);
    ck_assert_uint_eq(next.max_contexts, 5);
    ck_assert_uint_eq(next.max_terminations_per_context, 2);
    ck_assert_str_eq(next.default_realm, "core");
    ck_assert_uint_eq(next.long_timer_ms, 10000);
    ck_assert_uint_eq(next.provisional_timer_ms, 300);
    ck_assert_uint_eq(next.mg_initial_rto_ms, 200);
    ck_assert_uint_eq(next.mg_min_rto_ms, 50);
    ck_assert_uint_eq(next.mg_max_rto_ms, 900);
    ck_assert_uint_eq(next.mg_max_retransmissions, 3);
    ck_assert_uint_eq(next.relay_buffer_bytes, 8192);
    ck_assert_uint_eq(next.handshake_timeout_ms, 2000);
    ck_assert_uint_eq(next.mgc_count, 2);
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&next.mgc[1])->sin_port), 3002);
    /* Restart-only keys and realm keys (certificates included) kept their running values. */
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&next.iq_listen)->sin_port), 2944);
    ck_assert_uint_eq(next.workers, 0);
    ck_assert_str_eq(next.mid, "");
    ck_assert_str_eq(next.realms[0].certificate, "");
    ck_assert_uint_eq(next.realms[1].ports.high, 39999);
    /* Nothing else differs from the new file. */
    struct agw_config expect = fresh;
    expect.iq_listen = running.iq_listen;
    expect.workers = running.workers;
    memcpy(expect.mid, running.mid, sizeof(expect.mid));
    memcpy(expect.realms, running.realms, sizeof(expect.realms));
    ck_assert(agw_config_equal(&next, &expect));
}
END_TEST

START_TEST(test_usage)
{
    const char *u = agw_config_usage();
    ck_assert_ptr_nonnull(strstr(u, "usage: ims-agw [-c FILE]"));
    ck_assert_ptr_nonnull(strstr(u, "\n  --iq-listen ADDR:PORT\n"));
    ck_assert_ptr_nonnull(strstr(u, "\n  --mgc ADDR:PORT (repeatable)\n"));
    ck_assert_ptr_nonnull(strstr(u, "\n  --workers N|auto\n"));
    ck_assert_ptr_nonnull(strstr(u, "\n  --log-level LEVEL\n"));
    ck_assert_ptr_nonnull(strstr(u, "\n  --max-terminations-per-context N\n"));
    ck_assert_ptr_nonnull(strstr(u, "\n  --realm NAME,ADDRESS,LOW-HIGH\n"));
    ck_assert_ptr_nonnull(strstr(u, "(1..1000000); default 10000\n"));
    /* Not cut short: the last key is there, whole. */
    ck_assert_ptr_nonnull(strstr(u, "\n  --handshake-timeout-ms N\n"));
    ck_assert_int_eq(u[strlen(u) - 1], '\n');
    ck_assert_ptr_null(strstr(u, "--address")); /* realm keys only through --realm */
}
END_TEST

/* ---- main ---- */

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmpdir);
}

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_example_file);
    tcase_add_test(tc, test_uint_bounds);
    tcase_add_test(tc, test_enum);
    tcase_add_test(tc, test_addr_port);
    tcase_add_test(tc, test_addr_and_ports);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_set_errors);
    tcase_add_test(tc, test_mgc_list);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_add_test(tc, test_file_errors);
    tcase_add_test(tc, test_file_syntax);
    suite_add_tcase(s, tc);

    tc = tcase_create("validate");
    tcase_add_test(tc, test_port_overlap);
    tcase_add_test(tc, test_validate_checks);
    suite_add_tcase(s, tc);

    tc = tcase_create("cli");
    tcase_add_test(tc, test_cli_overrides_file);
    tcase_add_test(tc, test_cli_errors);
    tcase_add_test(tc, test_cli_realm);
    tcase_add_test(tc, test_usage);
    suite_add_tcase(s, tc);

    tc = tcase_create("print_reload");
    tcase_add_test(tc, test_print_round_trip);
    tcase_add_test(tc, test_equal);
    tcase_add_test(tc, test_reload_check);
    tcase_add_test(tc, test_take_reloadable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tmpdir();
    return failed ? 1 : 0;
}
