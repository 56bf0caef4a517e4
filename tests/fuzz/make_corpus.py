#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/*).

The corpora are committed; run this again only to change them:
    python3 tests/fuzz/make_corpus.py
It has its own small MessagePack encoder so that it needs nothing installed.

corpus/frame/*     input of fuzz_frame: [config byte][piece seed][client bytes]
corpus/response/*  input of fuzz_response: [depth byte][one frame body]
corpus/json/*      input of fuzz_json: JSON text (mp_*: a MessagePack value)
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def mp(v):
    """Encode a Python value as MessagePack (shortest forms)."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, Raw):
        return v.b
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if v >= 0:
            for fmt, tag in (("B", 0xCC), (">H", 0xCD), (">I", 0xCE), (">Q", 0xCF)):
                try:
                    return bytes([tag]) + struct.pack(fmt, v)
                except struct.error:
                    pass
        for fmt, tag in (("b", 0xD0), (">h", 0xD1), (">i", 0xD2), (">q", 0xD3)):
            try:
                return bytes([tag]) + struct.pack(fmt, v)
            except struct.error:
                pass
        raise ValueError(v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        n = len(b)
        if n < 32:
            return bytes([0xA0 | n]) + b
        if n < 256:
            return b"\xd9" + bytes([n]) + b
        if n < 65536:
            return b"\xda" + struct.pack(">H", n) + b
        return b"\xdb" + struct.pack(">I", n) + b
    if isinstance(v, bytes):
        n = len(v)
        if n < 256:
            return b"\xc4" + bytes([n]) + v
        if n < 65536:
            return b"\xc5" + struct.pack(">H", n) + v
        return b"\xc6" + struct.pack(">I", n) + v
    if isinstance(v, list):
        n = len(v)
        h = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return h + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        h = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return h + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(type(v))


class Raw:
    """Bytes inserted as they are (already encoded, or deliberately broken)."""

    def __init__(self, b):
        self.b = b


def frame(body):
    return struct.pack(">I", len(body)) + body


def req(rid, op, *args):
    return frame(mp([0, rid, op] + list(args)))


def nested(d):
    return Raw(b"\x91" * d + b"\x01")


HELLO = req(1, 1, "agate", 1, "fuzz", None)

# config byte: bit 7 = depth 32 (else 1); low 7 bits scale the frame limit
BIG = 0xFF   # depth 32, limit ~12 KiB
SMALL = 0x81  # depth 32, limit 105 bytes

frames = {
    "hello": (BIG, HELLO),
    "ping": (BIG, HELLO + req(2, 2)),
    "server_info": (BIG, HELLO + req(2, 3)),
    "region_create": (BIG, HELLO + req(2, 10, "orders", "PARTITION_REDUNDANT",
                                       {"redundant_copies": 1, "total_num_buckets": 7,
                                        "if_not_exists": True})),
    "region_admin": (BIG, HELLO + req(3, 12) + req(4, 13, "/orders") + req(5, 11, "orders")),
    "put_get": (BIG, HELLO + req(2, 20, "r", "k", {"a": [1, 2.5, "x", None, True]})
                + req(3, 21, "r", "k") + req(4, 27, "r", b"\x00bin")),
    "remove_contains": (BIG, HELLO + req(2, 22, "r", "k") + req(3, 23, "r", "") + req(4, 26, "r")
                        + req(5, 30, "r")),
    "put_all": (BIG, HELLO + req(2, 24, "r", {"a": 1, "b": [1, [2, [3]]], "c": {"d": "e"}})),
    "get_all": (BIG, HELLO + req(2, 25, "r", ["a", "b", b"c", ""])),
    "scan": (BIG, HELLO + req(2, 28, "r", 0, 100) + req(3, 29, "r", 0x100000003, 10000)),
    "deep_ok": (BIG, HELLO + req(2, 20, "r", "k", nested(32))),
    "deep_over": (BIG, HELLO + req(2, 20, "r", "k", nested(33))),
    "deep_shallow_limit": (0x7F, req(2, 20, "r", "k", nested(2))),
    "c1_value": (BIG, HELLO + req(2, 20, "r", "k", Raw(b"\xc1"))),
    "c1_key": (BIG, req(2, 20, "r", Raw(b"\xc1"), 1)),
    "trailing": (BIG, frame(mp([0, 9, 2]) + b"\xc0")),
    "too_many_args": (BIG, req(2, 20, *(["r"] * 9))),
    "short_array": (BIG, frame(b"\x92\x00\x01")),
    "not_array": (BIG, frame(b"\x80") + frame(b"\xa5hello")),
    "kind_response": (BIG, frame(mp([1, 5, 0]))),
    "negative_id": (BIG, frame(b"\x93\x00\xff\x02")),
    "big_op": (BIG, frame(b"\x93\x00\x01\xcf\x00\x00\x00\x01\x00\x00\x00\x00")),
    "empty_frame": (BIG, b"\x00\x00\x00\x00"),
    "oversized_header": (SMALL, b"\xff\xff\xff\xff"),
    "at_limit": (SMALL, frame(mp([0, 1, 20, "r", "k", b"x" * 90]))[:4 + 105]),
    "over_limit": (SMALL, req(1, 20, "r", "k", b"x" * 200)),
    "truncated_body": (BIG, HELLO[:-3]),
    "truncated_header": (BIG, HELLO[:2]),
    "array32_claim": (BIG, frame(b"\xdd\xff\xff\xff\xff\x00\x01\x02")),
    "str32_claim": (BIG, frame(b"\x95\x00\x01\x14\xa1r\xdb\xff\xff\xff\xff")),
    "all_types": (BIG, req(7, 20, "r", "k", [
        None, True, False, 0, 127, 128, 255, 256, 65535, 65536, 2**32, 2**64 - 1,
        -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**63, 1.5, -0.0,
        Raw(b"\xca\x3f\xc0\x00\x00"), "", "s" * 31, "s" * 32, "s" * 300, b"", b"b" * 300,
        Raw(b"\xd4\x01\xaa"), Raw(b"\xd5\x02\xaa\xbb"), Raw(b"\xd6\x03" + b"\x00" * 4),
        Raw(b"\xd7\x04" + b"\x00" * 8), Raw(b"\xd8\x05" + b"\x00" * 16),
        Raw(b"\xc7\x02\x06ab"), Raw(b"\xc8\x00\x01\x07z"), Raw(b"\xc9\x00\x00\x00\x00\x08"),
        Raw(b"\xdc\x00\x01\x01"), Raw(b"\xdd\x00\x00\x00\x01\x01"),
        Raw(b"\xde\x00\x01\x01\x02"), Raw(b"\xdf\x00\x00\x00\x01\x01\x02"),
        {"k": {"k2": [1]}}, [[]], {}, [],
    ])),
    "pipeline": (BIG, HELLO + b"".join(req(100 + i, 20 if i % 2 == 0 else 21, "p", "k%d" % i,
                                           *([i] if i % 2 == 0 else []))
                                       for i in range(40))),
}

responses = {
    "hello_info": (32, mp([1, 1, 0, {"server": "s1", "member_id": 123456, "protocol": 1,
                                      "version": "0.1.0", "max_frame": 64 << 20,
                                      "max_key": 16384, "max_value": 16 << 20, "max_depth": 32,
                                      "metadata_version": 0}])),
    "ok_empty": (32, mp([1, 2, 0])),
    "not_found": (32, mp([1, 3, 1])),
    "get_value": (32, mp([1, 4, 0, {"a": [1, 2, {"b": None}]}])),
    "get_entry": (32, mp([1, 5, 0, "v", 123456, 42])),
    "contains": (32, mp([1, 6, 0, True])),
    "size": (32, mp([1, 7, 0, 2**40])),
    "get_all": (32, mp([1, 8, 0, [[1], None, ["x"], [None]]])),
    "keys_page": (32, mp([1, 9, 0, 0x1200000007, ["a", b"b", ""]])),
    "entries_page": (32, mp([1, 10, 0, 0, ["a", 1, b"b", [2], "", None]])),
    "region_list": (32, mp([1, 11, 0, [{"name": "r", "type": "PARTITION", "redundant_copies": 0,
                                        "total_num_buckets": 113, "partitioned": True,
                                        "persistent": False, "entries": 0, "bytes": 0,
                                        "members": [{"member": "s1", "member_id": 1,
                                                     "buckets": 113, "primary_buckets": 113,
                                                     "entries": 0}]}]])),
    "error_unknown_region": (32, mp([1, 12, 11, "region 'x' not found"])),
    "error_too_large": (32, mp([1, 0, 13, "frame larger than the server's limit"])),
    "error_no_message": (32, mp([1, 13, 19])),
    "error_int_message": (32, mp([1, 14, 10, 5])),
    "redirect": (32, mp([1, 15, 2, 7, {"hint": "h"}])),
    "push": (32, mp([2, 3, 1, "item", [1, 2]])),
    "request_kind": (32, mp([0, 1, 2])),
    "status_big": (32, b"\x93\x01\x01\xce\x00\x01\x00\x00"),
    "deep_value": (32, mp([1, 16, 0, nested(32)])),
    "deep_over": (4, mp([1, 17, 0, nested(6)])),
    "trailing": (32, mp([1, 18, 0]) + b"\xc0"),
    "truncated": (32, mp([1, 19, 0, "abcdef"])[:-2]),
    "c1": (32, b"\x94\x01\x01\x00\xc1"),
}


# fuzz_json reads every input both as JSON text and as MessagePack; the
# JSON seeds drive the parser and the round trip, the mp_* seeds the printer
# (the mappings of docs/cli.md that JSON text cannot produce).
json_docs = {
    "nested": '{"a": {"b": [1, [2, [3, {"c": null}]]]}, "d": [true, false], "e": {"f": {"g": {}}}}',
    "unicode_escapes": r'"\u00e9\u4E2D\u0000\u001f\u007f \"q\" \\ \/ \b\f\n\r\t"',
    "surrogate_pairs": r'["\ud83d\ude00", "\uD834\uDD1E", "x\udbff\udfffy", "\u00e9\ud83d\ude00"]',
    "utf8_raw": '{"h\u00e9llo": "w\u00f6rld \u2603 \u65e5\u672c", "emoji": "\U0001f600"}',
    "big_integers": "[18446744073709551615, -9223372036854775808, 18446744073709551616, "
                    "-9223372036854775809, 9223372036854775807, 4294967296, 4294967295, 65536, "
                    "65535, 256, 255, 128, 127, -32, -33, -128, -129, -32768, -32769, 0, -0, "
                    "123456789012345678901234567890]",
    "floats": "[0.1, 1.5, -0.0, 0.0, 1e300, -2.25e-300, 2.5e-308, 5e-324, 1.7976931348623157e308, "
              "1E+2, 1e-7, 123456789.123456789, 3.141592653589793, 100.0, 1.0e0]",
    "empty_containers": '{"o": {}, "a": [], "s": "", "n": [[], {}, [[]], [{}]]}',
    "empty_object": "{}",
    "empty_array": "[]",
    "duplicate_keys": '{"a": 1, "b": 2, "a": 3}',
    "duplicate_keys_many": "{" + ", ".join('"k%d": %d' % (i, i) for i in range(20)) + ', "k7": 0}',
    "many_keys": "{" + ", ".join('"k%d": [%d]' % (i, i) for i in range(40)) + "}",
    "long_array": "[" + ", ".join(str(i * 7919 % 100003) for i in range(300)) + "]",
    "key_escapes": '{"": 0, "\\u0000": 1, "a\\"b": 2, "\\ud83d\\ude00": 3}',
    "whitespace": ' \n\t[ 1 , 2 ,\r\n {"x" : "y"} , null,true ,false ]\n ',
    "deep": "[" * 40 + "{}" + "]" * 40,
    "bad_trailing": "[1, 2] 3",
    "bad_surrogate": '"\\ud800x"',
    "bad_number": "[01, 1., .5, -]",
}
json_docs = {k: v.encode("utf-8") for k, v in json_docs.items()}
json_docs["utf8_raw"] = '{"héllo": "wörld ☃ 日本", "emoji": "😀"}'.encode("utf-8")
json_docs.update({
    "mp_types": mp([b"\x00bin", Raw(b"\xd4\x05\xff"), Raw(b"\xc7\x03\x01abc"),
                    Raw(b"\xca\x3f\xc0\x00\x00"), Raw(b"\xca\x3d\xcc\xcc\xcd"),
                    Raw(b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"),
                    Raw(b"\xcb\xff\xf0\x00\x00\x00\x00\x00\x00"), 2**64 - 1, -2**63,
                    Raw(b"\xa3a\xffb"), None, True, 1.25]),
    "mp_keys": Raw(b"\x86\x01\xa1x\x92\x01\x02\xc0\xc4\x01\x00\x01\xc3\x02"
                   b"\x81\xa1k\xa1v\x03\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\x04").b,
    "mp_duplicate_keys": Raw(b"\x82\xa1a\x01\xa1a\x02").b,
    "mp_nested": mp({"a": [1, {"b": [b"x", {"c": None}]}], "d": {}}),
    # non-string keys within non-string keys: each level escapes the text
    # again (the printer refuses more than 4 levels: 30 once made gigabytes)
    "mp_key_in_key": Raw(b"\x81\x92\x81\x91\x01\xa1a\xc0\x02").b,
    "mp_keys_nested_deep": b"\x81" * 30 + b"\xc0" * 31,
})


def write_plain(dirname, items):
    """Writes each input as it is."""
    d = os.path.join(HERE, "corpus", dirname)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    for name, data in sorted(items.items()):
        with open(os.path.join(d, name), "wb") as fp:
            fp.write(data)


def write(dirname, items):
    d = os.path.join(HERE, "corpus", dirname)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    for name, (cfg, data) in sorted(items.items()):
        with open(os.path.join(d, name), "wb") as fp:
            if dirname == "frame":  # config byte, piece seed, stream
                fp.write(bytes([cfg, 0x2A]) + data)
            else:  # depth byte (depth = 1 + byte % 40), body
                fp.write(bytes([cfg - 1]) + data)


write("frame", frames)
write("response", responses)
write_plain("json", json_docs)
print("wrote %d frame seeds, %d response seeds, %d json seeds"
      % (len(frames), len(responses), len(json_docs)), file=sys.stderr)
