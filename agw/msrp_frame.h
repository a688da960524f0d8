/* MSRP (RFC 4975) framing, sans I/O: a TCP stream framer and a re-chunker to a data channel's
   max-message-size (RFC 8873: one chunk per data-channel message). */
#ifndef IMS_AGW_MSRP_FRAME_H
#define IMS_AGW_MSRP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGW_MSRP_TID_MIN 4 /* transaction id: ALPHANUM 3*31ident-char */
#define AGW_MSRP_TID_MAX 32
#define AGW_MSRP_FRAME_MAX_DEFAULT (1024 * 1024)
#define AGW_MSRP_FRAME_MAX_MIN 64         /* smallest frame bound the framer accepts */
#define AGW_MSRP_START_LINE_MAX 1024      /* bytes, CRLF included */
#define AGW_MSRP_RANGE_UNKNOWN UINT64_MAX /* a Byte-Range end or total of "*" */

/* Byte-Range: start-end/total, 1-based and inclusive. */
struct agw_msrp_byte_range {
    uint64_t start;
    uint64_t end;   /* or AGW_MSRP_RANGE_UNKNOWN */
    uint64_t total; /* or AGW_MSRP_RANGE_UNKNOWN */
};

/* One parsed frame. Pointers borrow the frame; offsets count from its first byte. */
struct agw_msrp_frame_info {
    bool response;
    char flag; /* '$' last chunk, '+' more follow, '#' aborted */
    const uint8_t *tid;
    size_t tid_len;
    const uint8_t *method; /* requests: "SEND", "REPORT", ... */
    size_t method_len;
    unsigned status;                 /* responses: 000..999 */
    size_t headers_off, headers_len; /* the header lines, each with its CRLF */
    const uint8_t *message_id;       /* NULL when absent */
    size_t message_id_len;
    bool has_range;
    struct agw_msrp_byte_range range;
    bool has_body; /* an empty line followed the headers (requests only) */
    size_t body_off, body_len;
};

/* Parses one complete frame (exactly len bytes, ending with its end-line). *out borrows frame.
   0; -EINVAL for NULL arguments; -EPROTO for anything malformed. */
int agw_msrp_frame_parse(const uint8_t *frame, size_t len, struct agw_msrp_frame_info *out);

/* Parses a Byte-Range value ("1-25/25", no header name) of len bytes. 0 or -EPROTO. */
int agw_msrp_byte_range_parse(const char *value, size_t len, struct agw_msrp_byte_range *out);

/* Reassembles frames from a TCP byte stream in one bounded buffer. Fields are private. */
struct agw_msrp_framer {
    uint8_t *buf;
    size_t cap, len, head, max_frame;
    size_t line_end; /* past the start line, relative to head; 0 until it is complete */
    size_t scan;     /* where the end-line search resumes, relative to head */
    uint8_t tid[AGW_MSRP_TID_MAX];
    size_t tid_len;
    int error; /* sticky: once set the stream is unusable */
};

/* Prepares f for frames of at most max_frame bytes (0 = AGW_MSRP_FRAME_MAX_DEFAULT). The buffer
   is allocated on first input and grows up to max_frame. 0 or -EINVAL. */
int agw_msrp_framer_init(struct agw_msrp_framer *f, size_t max_frame);

/* Frees the buffer f owns; f may be initialised again. */
void agw_msrp_framer_free(struct agw_msrp_framer *f);

/* Copies up to len bytes of data in; *used = bytes taken. Pop every frame and feed the rest.
   0; -ENOMEM; -ENOBUFS when frames wait to be popped; or the sticky stream error. */
int agw_msrp_framer_feed(struct agw_msrp_framer *f, const void *data, size_t len, size_t *used);

/* Zero-copy input: *buf / *space (>= 1) to receive into, valid until the next call on f; then
   agw_msrp_framer_commit(f, n) with the n bytes written. Same errors as feed. */
int agw_msrp_framer_input_space(struct agw_msrp_framer *f, uint8_t **buf, size_t *space);
int agw_msrp_framer_commit(struct agw_msrp_framer *f, size_t n);

/* Takes the next complete frame: 1 with *frame / *len (and *info unless NULL) borrowing f's
   buffer until the next call on f; 0 when more bytes are needed; -EPROTO (malformed start line
   or headers) or -EMSGSIZE (a frame over max_frame), sticky: the caller closes the stream. */
int agw_msrp_framer_pop(struct agw_msrp_framer *f, const uint8_t **frame, size_t *len,
                        struct agw_msrp_frame_info *info);

/* Frees the buffer when no partial frame is held (an idle stream); 0 or -EBUSY. */
int agw_msrp_framer_trim(struct agw_msrp_framer *f);

/* Names piece `index` (0-based) of the chunk whose transaction id is orig: writes 4..32 ident
   characters to out (AGW_MSRP_TID_MAX bytes) and their count to *out_len. A later `attempt`
   asks for another name because the previous one's end-line occurs in the piece's body; it may
   be called again for the same piece. 0 or a negative code, which the re-chunker returns. */
typedef int (*agw_msrp_tid_fn)(void *arg, const uint8_t *orig, size_t orig_len, unsigned index,
                               unsigned attempt, char *out, size_t *out_len);

/* Splits one frame into pieces of at most `limit` bytes. Fields are private except the last
   three, which a relay reads to answer the original transaction for its pieces. */
struct agw_msrp_rechunker {
    const uint8_t *frame;
    size_t frame_len, limit;
    struct agw_msrp_frame_info info;
    agw_msrp_tid_fn tid_fn;
    void *tid_arg;
    bool passthrough, finished;
    uint64_t range_start, range_total;
    size_t keep1_len;            /* header bytes kept before the Byte-Range line */
    size_t keep2_off, keep2_len; /* and after it */
    size_t payload;              /* body bytes per piece */
    size_t done;                 /* body bytes already emitted */
    unsigned index;
    size_t pieces;                    /* how many pieces next will produce */
    char piece_tid[AGW_MSRP_TID_MAX]; /* the id of the piece next last wrote */
    size_t piece_tid_len;
};

/* Prepares rc over frame (borrowed until the last next call). A frame of at most limit bytes
   (0 = no limit, as a max-message-size of 0 says) goes out unchanged as one piece; a longer SEND
   with a body is split by RFC 4975 §5.1: each piece a new transaction (tid_fn, or NULL for orig +
   "." + index), the same headers with the Byte-Range rewritten, flag '+' except on the last piece,
   which keeps the frame's flag. 0; -EINVAL; -EPROTO malformed frame; -EMSGSIZE when it cannot fit
   (a response, a REPORT, a body-less request, or a limit too small for the headers and one byte of
   body). */
int agw_msrp_rechunk_init(struct agw_msrp_rechunker *rc, const uint8_t *frame, size_t len,
                          size_t limit, agw_msrp_tid_fn tid_fn, void *tid_arg);

/* Writes the next piece into out (cap bytes; cap >= limit always suffices). 1 with *out_len;
   0 when all pieces are out; -ENOSPC (nothing consumed); -EINVAL for a bad id from tid_fn;
   -EEXIST when no id's end-line is absent from the body; or tid_fn's own error. */
int agw_msrp_rechunk_next(struct agw_msrp_rechunker *rc, uint8_t *out, size_t cap, size_t *out_len);

/* Writes frame into out (cap bytes) with its transaction id, in the start line and the end-line,
   replaced by tid: a relay answering the original transaction for the pieces of a re-chunked
   SEND rewrites the response to the last one. *out_len = bytes written. 0; -EINVAL (tid not an
   ident); -EPROTO (frame malformed); -EEXIST (tid's end-line occurs in the body); -ENOSPC. */
int agw_msrp_frame_retid(const uint8_t *frame, size_t len, const uint8_t *tid, size_t tid_len,
                         uint8_t *out, size_t cap, size_t *out_len);

#endif
