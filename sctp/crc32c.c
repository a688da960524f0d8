/* CRC32c for SCTP packets: the SSE4.2 crc32 instruction where the CPU has it, tables elsewhere. */
#include "crc32c.h"

#include <endian.h>
#include <pthread.h>
#include <string.h>

/* The Castagnoli polynomial 0x1EDC6F41 with its bits reversed: SCTP's CRC is bit-reflected, the
   first bit on the wire being the lowest of each byte (RFC 9260 Appendix B). */
#define POLY 0x82F63B78u

#define CHECKSUM_OFFSET 8 /* source port, destination port, verification tag, then checksum */

/* table[k][b]: the CRC register after byte b followed by k zero bytes, so that eight bytes are
   folded in with eight independent look-ups instead of eight dependent ones. */
static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void make_table(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int bit = 0; bit < 8; bit++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
        table[0][b] = c;
    }
    for (int k = 1; k < 8; k++) {
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t prev = table[k - 1][b];
            table[k][b] = (prev >> 8) ^ table[0][prev & 0xff];
        }
    }
}

static uint32_t load_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

uint32_t agw_sctp_crc32c_portable(uint32_t crc, const void *data, size_t len)
{
    (void)pthread_once(&table_once, make_table);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint32_t lo = c ^ load_le32(p);
        uint32_t hi = load_le32(p + 4);
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
            table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
            table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
    }
    for (; len > 0; p++, len--)
        c = (c >> 8) ^ table[0][(c ^ *p) & 0xff];
    return ~c;
}

#if defined(__x86_64__)

/* Compiled for SSE4.2 whatever the build's -march: called only after the run-time check. The
   instruction takes little-endian words, which is x86's memory order. One dependent chain (8
   bytes per 3 cycles, ~8 GB/s) is already ~7 times usrsctp's own tables: interleaving several
   chains and recombining their CRCs would not pay for its complexity on 1200-byte packets. */
__attribute__((target("sse4.2"))) uint32_t agw_sctp_crc32c_hw(uint32_t crc, const void *data,
                                                              size_t len)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;
    for (; len > 0 && ((uintptr_t)p & 7) != 0; p++, len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p);
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t word;
        memcpy(&word, p, sizeof(word));
        c = __builtin_ia32_crc32di(c, word);
    }
    for (; len > 0; p++, len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p);
    return ~(uint32_t)c;
}

bool agw_sctp_crc32c_has_hw(void)
{
    return __builtin_cpu_supports("sse4.2");
}

#else

uint32_t agw_sctp_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    return agw_sctp_crc32c_portable(crc, data, len);
}

bool agw_sctp_crc32c_has_hw(void)
{
    return false;
}

#endif

uint32_t agw_sctp_crc32c(uint32_t crc, const void *data, size_t len)
{
    if (agw_sctp_crc32c_has_hw())
        return agw_sctp_crc32c_hw(crc, data, len);
    return agw_sctp_crc32c_portable(crc, data, len);
}

/* The CRC of the packet as sent: computed with the checksum field taken as zeros. */
static uint32_t packet_crc(const uint8_t *packet, size_t len)
{
    static const uint8_t zeros[4];
    uint32_t c = agw_sctp_crc32c(0, packet, CHECKSUM_OFFSET);
    c = agw_sctp_crc32c(c, zeros, sizeof(zeros));
    return agw_sctp_crc32c(c, packet + AGW_SCTP_COMMON_HEADER_LEN,
                           len - AGW_SCTP_COMMON_HEADER_LEN);
}

/* The CRC goes out least significant byte first (RFC 9260 Appendix B; the byte order iSCSI's
   RFC 3720 B.4 examples show), unlike every other field of the header. */
void agw_sctp_checksum_set(uint8_t *packet, size_t len)
{
    if (len < AGW_SCTP_COMMON_HEADER_LEN)
        return;
    uint32_t c = htole32(packet_crc(packet, len));
    memcpy(packet + CHECKSUM_OFFSET, &c, sizeof(c));
}

bool agw_sctp_checksum_ok(const uint8_t *packet, size_t len)
{
    if (len < AGW_SCTP_COMMON_HEADER_LEN)
        return false;
    uint32_t field;
    memcpy(&field, packet + CHECKSUM_OFFSET, sizeof(field));
    return le32toh(field) == packet_crc(packet, len);
}
