#!/usr/bin/env python3
"""Rewrites a binary snapshot file (config.bin) of format version 2 in format version 1.

usage: to_v1.py IN OUT
The reference for the disk figures: the agent still reads version 1 (what agents before
version 2 saved), so the same snapshot can be loaded in both layouts in one run.
Version 1: plan index u32, state byte, app_id length u16 (0xFFFF: none); credentials
with an i32 of nanoseconds after the expiry's seconds (49 bytes instead of 45).
"""
import struct
import sys


def varint(buf, pos):
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def apps_v1(payload):
    out = bytearray()
    pos = 0
    while pos < len(payload):
        uid = payload[pos:pos + 16]
        plan, pos = varint(payload, pos + 16)
        state = payload[pos]
        pos += 1
        out += uid + struct.pack("<IB", plan, state & 0b11)
        if state & 0b100:
            length, pos = varint(payload, pos)
            out += struct.pack("<H", length) + payload[pos:pos + length]
            pos += length
        else:
            out += b"\xff\xff"
    return bytes(out)


def credentials_v1(payload):
    out = bytearray()
    for at in range(0, len(payload), 45):
        out += payload[at:at + 44] + b"\0\0\0\0" + payload[at + 44:at + 45]
    return bytes(out)


def main(src, dst):
    data = open(src, "rb").read()
    if data[:4] != b"TGSB" or struct.unpack_from("<I", data, 4)[0] != 2:
        sys.exit("not a format version 2 snapshot")
    out = bytearray(b"TGSB" + struct.pack("<I", 1))
    pos = 8
    while pos < len(data):
        kind, length = struct.unpack_from("<BI", data, pos)
        payload = data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if kind == 3:
            payload = apps_v1(payload)
        elif kind == 4:
            payload = credentials_v1(payload)
        out += struct.pack("<BI", kind, len(payload)) + payload
    open(dst, "wb").write(out)


main(*sys.argv[1:3])
