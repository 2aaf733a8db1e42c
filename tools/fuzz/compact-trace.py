#!/usr/bin/env python3
"""Rewrites a malloctrace trace into a small seed for the fuzzer: every chunk record shrinks to the bytes
its events use, PADDING records and the zero fill after the last record are dropped. The result is still
a valid trace (docs/trace-format.md) with the same events. With MAX_BYTES, chunk records that would grow
the output beyond it are left out too (the other records are kept), which gives a small seed that still
ends like the original. Usage: compact-trace.py IN OUT [MAX_BYTES]"""
import struct
import sys

CHUNK, PADDING = 2, 4


def records(data):
    offset = 16
    while offset + 8 <= len(data):
        kind, length = data[offset], struct.unpack_from("<I", data, offset + 4)[0]
        if kind == 0:
            return
        payload = data[offset + 8 : offset + 8 + length]
        yield kind, payload
        offset = (offset + 8 + length + 7) & ~7


def main(source, target, max_bytes=None):
    data = open(source, "rb").read()
    limit = int(max_bytes or 0) or len(data)
    out = bytearray(data[:16])
    for kind, payload in records(data):
        if kind == PADDING:
            continue
        if kind == CHUNK and len(payload) >= 8:
            used = struct.unpack_from("<I", payload, 4)[0]
            payload = payload[: 8 + used]
            if len(out) + 8 + len(payload) > limit:
                continue
        out += struct.pack("<BBHI", kind, 0, 0, len(payload)) + payload
        out += bytes(-len(out) % 8)
    open(target, "wb").write(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
