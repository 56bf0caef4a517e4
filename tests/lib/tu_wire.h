/* tu_wire.h - speaking the wire protocol by hand over raw sockets.
 *
 * Requests are built with msgpack-c's packer; replies are decoded with
 * msgpack-c's unpacker, an implementation independent of the server's own
 * reader (common/mp.c), so a bug there cannot hide itself. */
#ifndef AGATE_TESTS_TU_WIRE_H
#define AGATE_TESTS_TU_WIRE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A listening socket on 127.0.0.1 at a port the kernel picks (a fake
 * server's): returns it and sets *port and addr ("127.0.0.1:port", cap
 * bytes). Fails the test when it cannot. */
int tw_listen(int *port, char *addr, size_t cap);
/* Connects to 127.0.0.1:port. Returns the socket or -1. */
int tw_connect(int port);
/* As tw_connect, with SO_RCVBUF set to rcvbuf bytes before connecting
 * (a small receive window makes the server's writes partial). */
int tw_connect_rcvbuf(int port, int rcvbuf);
/* Writes everything (blocking). 0 or -1. */
int tw_send(int fd, const void *p, size_t n);
/* Writes a 4-byte big-endian length and the body. */
int tw_send_frame(int fd, const void *body, size_t n);

/* A message under construction: pack into m->pk, then tw_msg_frame. */
typedef struct tw_msg {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} tw_msg;
/* Starts [0, id, op, <argc args follow>]. */
void tw_req(tw_msg *m, uint64_t id, uint32_t op, uint32_t argc);
/* Starts an empty message (pack anything). */
void tw_msg_init(tw_msg *m);
void tw_msg_free(tw_msg *m);
/* Sends the packed bytes as one frame. */
int tw_msg_send(int fd, tw_msg *m);
/* Appends the whole frame (header + body) to out (malloc'd, grows). */
void tw_msg_append_frame(tw_msg *m, uint8_t **out, size_t *len);

/* Packing shortcuts. */
void tw_pack_cstr(msgpack_packer *pk, const char *s);
void tw_pack_str(msgpack_packer *pk, const void *p, size_t n);
void tw_pack_bin(msgpack_packer *pk, const void *p, size_t n);
/* A value nested depth arrays deep: [[[...[1]...]]] (depth 0 = 1). */
void tw_pack_nested(msgpack_packer *pk, int depth);

/* Reads one frame body (malloc'd). Returns 1, 0 at EOF (or reset), -1 on
 * timeout or a broken frame. */
int tw_read_frame(int fd, int timeout_ms, uint8_t **body, uint32_t *len);
/* True if the peer closes the connection within timeout_ms; frames that
 * arrive first are discarded. */
bool tw_wait_closed(int fd, int timeout_ms);

/* A decoded response [1, id, status, results...]. */
typedef struct tw_resp {
    msgpack_unpacked u;
    uint64_t id;
    int status;
    uint32_t nresults;
    msgpack_object *results;
    char errmsg[512]; /* status >= 10 */
    uint8_t *raw;     /* the frame body */
    uint32_t rawlen;
    /* raw encoded bytes of results 0..15 inside raw (as the server sent
     * them: msgpack-c would re-encode numbers in their shortest form) */
    uint32_t roff[16], rlen[16];
} tw_resp;

/* Reads and decodes one response. 1, 0 at EOF, -1 on timeout or when the
 * body is not a well-formed response (message on stderr). */
int tw_recv(int fd, tw_resp *r, int timeout_ms);
void tw_resp_free(tw_resp *r);
/* Sends m, then reads one response into r (asserting one arrives). */
void tw_call(int fd, tw_msg *m, tw_resp *r);

/* Default timeout for a reply (ms), scaled under sanitizers. */
int tw_timeout(void);

/* Handshake; asserts OK. */
void tw_hello(int fd);
/* Connect + hello; asserts. */
int tw_open(int port);
/* Creates a PARTITION region (if_not_exists); asserts OK. */
void tw_create_region(int fd, const char *name);
/* PUT of a raw (already encoded) value; returns the status. */
int tw_put_raw(int fd, const char *region, const char *key, const void *value, size_t vlen);
/* GET; returns the status and, on OK, copies the raw value into *out (malloc'd). */
int tw_get_raw(int fd, const char *region, const char *key, uint8_t **out, size_t *outlen);

/* Asserts that the server on port still serves: a new connection does a
 * full HELLO / PUT / GET round trip. */
void tw_assert_serves(int port);

/* Helpers to look into a decoded map: value for a str key, or NULL. */
const msgpack_object *tw_map_get(const msgpack_object *map, const char *key);
bool tw_obj_is_str(const msgpack_object *o, const char *s);

#endif
