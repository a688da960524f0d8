/* Check suite for sctp/crc32c.c: known answers, the hardware and portable paths against each
   other, and the checksum field of real SCTP packets. AGW_CRC_BENCH=1 also prints GB/s. */
#include "sctp/crc32c.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

/* Every implementation this CPU can run: the dispatcher, the tables, and the instruction when
   present. */
static size_t implementations(crc_fn fns[3], const char *names[3])
{
    size_t n = 0;
    fns[n] = agw_sctp_crc32c;
    names[n++] = "dispatch";
    fns[n] = agw_sctp_crc32c_portable;
    names[n++] = "portable";
    if (agw_sctp_crc32c_has_hw()) {
        fns[n] = agw_sctp_crc32c_hw;
        names[n++] = "sse4.2";
    }
    return n;
}

/* RFC 3720 B.4 lists these CRCs as the bytes iSCSI sends, least significant first: "aa 36 91 8a"
   for 32 zero bytes is 0x8a9136aa. */
START_TEST(rfc3720_vectors)
{
    uint8_t zeros[32], ones[32], up[32], down[32];
    for (int i = 0; i < 32; i++) {
        zeros[i] = 0;
        ones[i] = 0xff;
        up[i] = (uint8_t)i;
        down[i] = (uint8_t)(31 - i);
    }
    /* B.4's SCSI Read (10) command PDU. */
    static const uint8_t read_pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    crc_fn fns[3];
    const char *names[3];
    size_t n = implementations(fns, names);
    for (size_t f = 0; f < n; f++) {
        ck_assert_msg(fns[f](0, zeros, 32) == 0x8a9136aau, "%s: zeros", names[f]);
        ck_assert_msg(fns[f](0, ones, 32) == 0x62a8ab43u, "%s: ones", names[f]);
        ck_assert_msg(fns[f](0, up, 32) == 0x46dd794eu, "%s: incrementing", names[f]);
        ck_assert_msg(fns[f](0, down, 32) == 0x113fdb5cu, "%s: decrementing", names[f]);
        ck_assert_msg(fns[f](0, read_pdu, 48) == 0xd9963a56u, "%s: read PDU", names[f]);
        /* The catalogue check value of CRC-32C, and nothing in, nothing changed. */
        ck_assert_msg(fns[f](0, "123456789", 9) == 0xe3069283u, "%s: check", names[f]);
        ck_assert_msg(fns[f](0, "", 0) == 0, "%s: empty", names[f]);
        ck_assert_msg(fns[f](0x12345678u, "", 0) == 0x12345678u, "%s: empty", names[f]);
    }
}
END_TEST

static void fill_random(uint8_t *b, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)(x >> 7);
    }
}

#define MAX_LEN 2048
#define MAX_SHIFT 16

/* Every length 0..2048 at every start 0..15 bytes past an aligned address: the instruction's
   head, 8-byte body and tail split every possible way. */
START_TEST(hardware_matches_portable)
{
    if (!agw_sctp_crc32c_has_hw())
        return; /* nothing to compare on this CPU; the known answers covered the tables */
    uint8_t *buf = aligned_alloc(64, MAX_LEN + 64); /* a multiple of the alignment */
    ck_assert_ptr_nonnull(buf);
    for (size_t len = 0; len <= MAX_LEN; len++) {
        fill_random(buf, MAX_LEN + MAX_SHIFT, (uint32_t)len);
        for (size_t shift = 0; shift < MAX_SHIFT; shift++) {
            uint32_t seed = (uint32_t)(len * 31 + shift);
            uint32_t hw = agw_sctp_crc32c_hw(seed, buf + shift, len);
            uint32_t sw = agw_sctp_crc32c_portable(seed, buf + shift, len);
            ck_assert_msg(hw == sw, "len %zu shift %zu: %08x vs %08x", len, shift, hw, sw);
        }
    }
    free(buf);
}
END_TEST

/* crc(crc(a), b) == crc(a b) at every split, the property the packet code relies on to skip the
   checksum field without copying the packet. */
START_TEST(continuation)
{
    uint8_t buf[300];
    fill_random(buf, sizeof(buf), 9);
    crc_fn fns[3];
    const char *names[3];
    size_t n = implementations(fns, names);
    for (size_t f = 0; f < n; f++) {
        uint32_t whole = fns[f](0, buf, sizeof(buf));
        for (size_t cut = 0; cut <= sizeof(buf); cut++) {
            uint32_t c = fns[f](fns[f](0, buf, cut), buf + cut, sizeof(buf) - cut);
            ck_assert_msg(c == whole, "%s: split at %zu", names[f], cut);
        }
    }
}
END_TEST

/* An INIT that usrsctp 0.9.5 sent with its own software CRC (offload off), byte for byte. */
static const uint8_t usrsctp_init[104] = {
    0x13, 0x88, 0x13, 0x89, 0x00, 0x00, 0x00, 0x00, 0xdf, 0x15, 0xa7, 0x2b, 0x01, 0x00, 0x00,
    0x5a, 0xc0, 0xbd, 0xb9, 0xdd, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0a, 0x08, 0x00, 0xe9, 0xe6,
    0x1b, 0xba, 0x80, 0x00, 0x00, 0x04, 0xc0, 0x00, 0x00, 0x04, 0x80, 0x08, 0x00, 0x09, 0xc0,
    0x0f, 0xc1, 0x80, 0x82, 0x00, 0x00, 0x00, 0x80, 0x02, 0x00, 0x24, 0xe8, 0x06, 0x5c, 0x03,
    0x65, 0xcf, 0x37, 0x99, 0x0e, 0xea, 0xfd, 0x3d, 0x54, 0x2d, 0x3a, 0x24, 0xf2, 0x36, 0x5a,
    0xd3, 0x32, 0xc3, 0xf9, 0x6b, 0x3b, 0xa0, 0x0d, 0xc5, 0xc0, 0x59, 0x1f, 0xd3, 0x80, 0x04,
    0x00, 0x06, 0x00, 0x01, 0x00, 0x00, 0x80, 0x03, 0x00, 0x06, 0x80, 0xc1, 0x00, 0x00,
};

/* What we write is what another SCTP stack writes, in the same place and byte order. */
START_TEST(packet_checksum_as_usrsctp)
{
    ck_assert(agw_sctp_checksum_ok(usrsctp_init, sizeof(usrsctp_init)));
    uint8_t pkt[sizeof(usrsctp_init)];
    memcpy(pkt, usrsctp_init, sizeof(pkt));
    memset(pkt + 8, 0, 4);
    ck_assert(!agw_sctp_checksum_ok(pkt, sizeof(pkt)));
    agw_sctp_checksum_set(pkt, sizeof(pkt));
    ck_assert_mem_eq(pkt, usrsctp_init, sizeof(pkt));
    /* Whatever the field held before, it is overwritten, not folded in. */
    memset(pkt + 8, 0xa5, 4);
    agw_sctp_checksum_set(pkt, sizeof(pkt));
    ck_assert_mem_eq(pkt, usrsctp_init, sizeof(pkt));
}
END_TEST

/* A CRC catches every single-bit error, the checksum field's own bits included. */
START_TEST(every_bit_flip_detected)
{
    uint8_t pkt[sizeof(usrsctp_init)];
    for (size_t bit = 0; bit < sizeof(pkt) * 8; bit++) {
        memcpy(pkt, usrsctp_init, sizeof(pkt));
        pkt[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ck_assert_msg(!agw_sctp_checksum_ok(pkt, sizeof(pkt)), "bit %zu", bit);
    }
    /* A truncated packet fails too. */
    for (size_t len = 12; len < sizeof(pkt); len++)
        ck_assert_msg(!agw_sctp_checksum_ok(usrsctp_init, len), "length %zu", len);
}
END_TEST

/* Below the 12-byte common header there is no checksum: never valid, never written. */
START_TEST(short_packets)
{
    uint8_t pkt[AGW_SCTP_COMMON_HEADER_LEN];
    memset(pkt, 0x5a, sizeof(pkt));
    for (size_t len = 0; len < AGW_SCTP_COMMON_HEADER_LEN; len++) {
        ck_assert(!agw_sctp_checksum_ok(pkt, len));
        agw_sctp_checksum_set(pkt, len);
        for (size_t i = 0; i < sizeof(pkt); i++)
            ck_assert_uint_eq(pkt[i], 0x5a);
    }
    /* A bare common header is a packet the CRC can cover. */
    agw_sctp_checksum_set(pkt, sizeof(pkt));
    ck_assert(agw_sctp_checksum_ok(pkt, sizeof(pkt)));
    ck_assert_uint_eq(pkt[0], 0x5a);
    ck_assert_uint_eq(pkt[7], 0x5a);
}
END_TEST

/* Random packets of every size up to a jumbo frame, set then checked, by whichever path runs. */
START_TEST(set_then_ok)
{
    static uint8_t pkt[9000 + 8];
    for (size_t len = 12; len <= 9000; len += 37) {
        uint8_t *p = pkt + len % 8;
        fill_random(p, len, (uint32_t)len);
        agw_sctp_checksum_set(p, len);
        ck_assert_msg(agw_sctp_checksum_ok(p, len), "length %zu", len);
        p[len - 1] ^= 0x80;
        ck_assert_msg(!agw_sctp_checksum_ok(p, len), "length %zu", len);
    }
}
END_TEST

#if defined(__x86_64__)
/* The run-time check agrees with what the kernel says of this CPU. */
START_TEST(detection_matches_cpuinfo)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[8192];
    bool listed = false, seen_flags = false;
    while (!seen_flags && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        seen_flags = true;
        listed = strstr(line, " sse4_2 ") != NULL || strstr(line, " sse4_2\n") != NULL;
    }
    fclose(f);
    if (seen_flags)
        ck_assert_int_eq(agw_sctp_crc32c_has_hw(), listed);
}
END_TEST
#endif

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* GB/s of each path over 1200-byte packets (the data-channel MTU) and 64 KiB buffers. */
static void bench(void)
{
    static uint8_t buf[65536];
    fill_random(buf, sizeof(buf), 1);
    static const size_t sizes[] = {1200, sizeof(buf)};
    crc_fn fns[3];
    const char *names[3];
    size_t n = implementations(fns, names);
    for (size_t s = 0; s < 2; s++) {
        for (size_t f = 1; f < n; f++) {
            const size_t total = (size_t)1 << 30;
            volatile uint32_t sink = 0;
            double start = seconds();
            for (size_t done = 0; done < total; done += sizes[s])
                sink = fns[f](sink, buf, sizes[s]);
            double t = seconds() - start;
            printf("crc32c %-8s %6zu-byte buffers: %6.2f GB/s\n", names[f], sizes[s],
                   (double)total / t / 1e9);
        }
    }
}

static Suite *crc_suite(void)
{
    Suite *s = suite_create("sctp_crc");
    TCase *tc = tcase_create("crc32c");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, rfc3720_vectors);
    tcase_add_test(tc, hardware_matches_portable);
    tcase_add_test(tc, continuation);
#if defined(__x86_64__)
    tcase_add_test(tc, detection_matches_cpuinfo);
#endif
    suite_add_tcase(s, tc);

    tc = tcase_create("packet");
    tcase_add_test(tc, packet_checksum_as_usrsctp);
    tcase_add_test(tc, every_bit_flip_detected);
    tcase_add_test(tc, short_packets);
    tcase_add_test(tc, set_then_ok);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *b = getenv("AGW_CRC_BENCH");
    if (b != NULL && *b != '\0' && *b != '0')
        bench();
    SRunner *sr = srunner_create(crc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
