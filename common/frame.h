/* frame.h - length-prefixed frames: a 4-byte big-endian body length, then the
 * MessagePack body. The splitter is resumable in the nginx sense: it keeps no
 * state of its own, callers append whatever bytes arrived and call it again. */
#ifndef AGATE_COMMON_FRAME_H
#define AGATE_COMMON_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define FRAME_HEADER 4

enum {
    FRAME_NEED_MORE = 0,
    FRAME_ETOOBIG = -1, /* declared body length above the limit */
    FRAME_EEMPTY = -2,  /* declared body length 0 */
};

/* Looks for one whole frame at the start of [p, p+n).
 * Returns its total size (header + body) and sets *body and *body_len when it is
 * all there; FRAME_NEED_MORE when more bytes are needed; a negative FRAME_E*
 * code when the header is unacceptable, which is decided from the 4 header
 * bytes alone, before the body is read or any memory is set aside for it. */
long frame_next(const uint8_t *p, size_t n, uint32_t max_body, const uint8_t **body,
                uint32_t *body_len);

/* Starts a frame at the end of b: reserves the header. Returns the offset to
 * pass to frame_end, or (size_t)-1 if out of memory. The offset counts from
 * the buffer's read position, so it survives the compaction that appending
 * may do while the frame is built (consuming from b meanwhile is not allowed). */
size_t frame_begin(buf_t *b);
/* Writes the body length into the header reserved at off. Returns 0, or -1
 * (header left unwritten) when the body exceeds what 4 bytes can express. */
int frame_end(buf_t *b, size_t off);

#endif
