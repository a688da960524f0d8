/* CRC32c (Castagnoli) and the SCTP common header's checksum field (RFC 9260 §6.8, Appendix B). */
#ifndef IMS_AGW_SCTP_CRC32C_H
#define IMS_AGW_SCTP_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The CRC32c of len bytes at data (borrowed), continuing crc: 0 to start, and
   crc32c(crc32c(0, a), b) is the CRC of a followed by b. The SSE4.2 crc32 instruction when the
   CPU has it, agw_sctp_crc32c_portable otherwise. Thread-safe. */
uint32_t agw_sctp_crc32c(uint32_t crc, const void *data, size_t len);

/* The same by table look-ups (slicing-by-8), on any CPU. */
uint32_t agw_sctp_crc32c_portable(uint32_t crc, const void *data, size_t len);

/* The same with the crc32 instruction; call only when agw_sctp_crc32c_has_hw() says so. */
uint32_t agw_sctp_crc32c_hw(uint32_t crc, const void *data, size_t len);

/* True when this CPU has the crc32 instruction (x86-64 with SSE4.2). */
bool agw_sctp_crc32c_has_hw(void);

#define AGW_SCTP_COMMON_HEADER_LEN 12

/* Writes the checksum of the SCTP packet (len bytes, owned by the caller) into its common header;
   nothing when len is below AGW_SCTP_COMMON_HEADER_LEN. */
void agw_sctp_checksum_set(uint8_t *packet, size_t len);

/* True when the SCTP packet's checksum field matches its bytes; false when too short to hold one.
 */
bool agw_sctp_checksum_ok(const uint8_t *packet, size_t len);

#endif
