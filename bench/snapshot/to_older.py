#!/usr/bin/env python3
"""Rewrites a binary snapshot file (config.bin) of format version 2 or 3 in an older one.

usage: to_older.py IN OUT [VERSION]   (VERSION 1, the default, or 2)
The reference for the disk figures: the agent still reads versions 1 and 2 (what older
agents saved), so the same snapshot can be loaded in each layout in one run.
Version 2: credentials always 45 bytes, the expiry's seconds (0 for none) before the flags
byte; version 3 puts the flags first and the expiry only when bit 1 says one follows.
Version 1: plan index u32, state byte, app_id length u16 (0xFFFF: none); credentials
with an i32 of nanoseconds after the expiry's seconds (49 bytes).
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


def credentials_v2(payload, version):
    """Format version 3 credential records as version 2's 45-byte ones."""
    if version == 2:
        return payload
    out = bytearray()
    at = 0
    while at < len(payload):
        flags = payload[at + 36]
        expiry = payload[at + 37:at + 45] if flags & 2 else b"\0" * 8
        out += payload[at:at + 36] + expiry + bytes([flags])
        at += 45 if flags & 2 else 37
    return bytes(out)


def credentials_v1(payload):
    out = bytearray()
    for at in range(0, len(payload), 45):
        out += payload[at:at + 44] + b"\0\0\0\0" + payload[at + 44:at + 45]
    return bytes(out)


def main(src, dst, target="1"):
    target = int(target)
    data = open(src, "rb").read()
    version = struct.unpack_from("<I", data, 4)[0] if data[:4] == b"TGSB" else None
    if version not in (2, 3) or target not in (1, 2) or target >= version:
        sys.exit(f"cannot rewrite format version {version} as version {target}")
    out = bytearray(b"TGSB" + struct.pack("<I", target))
    pos = 8
    while pos < len(data):
        kind, length = struct.unpack_from("<BI", data, pos)
        payload = data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if kind == 3 and target == 1:
            payload = apps_v1(payload)
        elif kind == 4:
            payload = credentials_v2(payload, version)
            if target == 1:
                payload = credentials_v1(payload)
        out += struct.pack("<BI", kind, len(payload)) + payload
    open(dst, "wb").write(out)


main(*sys.argv[1:4])
