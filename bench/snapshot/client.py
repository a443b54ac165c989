#!/usr/bin/env python3
"""Reads one snapshot from the config stream as an agent would, and times it.

usage: client.py URL TOKEN binary|json OUT_FILE
Prints: headers_s first_body_byte_s first_snapshot_byte_s complete_s bytes
(first_snapshot_byte: the binary head frame, or the JSON line's first byte).
"""
import http.client
import struct
import sys
import time
import urllib.parse

url, token, encoding, out_path = sys.argv[1:5]
parts = urllib.parse.urlsplit(url)
accept = "application/vnd.tollgate.config+bin; version=3" if encoding == "binary" else "application/x-ndjson"
started = time.monotonic()
conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
conn.request("GET", parts.path, headers={
    "Authorization": "Bearer " + token, "Accept": accept, "tollgate-protocol-version": "1"})
res = conn.getresponse()
headers = time.monotonic() - started
if res.status != 200:
    sys.exit("status %d: %s" % (res.status, res.read(500)))
first_byte = first_snapshot = None
total = 0
out = open(out_path, "wb")
buf = bytearray()
pos = 0  # binary: offset of the next frame header in buf
preamble_done = False
while True:
    chunk = res.read1(1 << 20)
    if not chunk:
        sys.exit("the stream ended before the snapshot did")
    now = time.monotonic() - started
    if first_byte is None:
        first_byte = now
    total += len(chunk)
    out.write(chunk)
    if encoding == "json":
        if first_snapshot is None and chunk.lstrip():
            first_snapshot = now
        if b"\n" in chunk:
            break
        continue
    buf += chunk
    if not preamble_done:
        if len(buf) < 8:
            continue
        if bytes(buf[:4]) != b"TGSB":
            sys.exit("not a binary stream")
        preamble_done, pos = True, 8
    done = False
    while len(buf) - pos >= 5:
        kind, length = struct.unpack_from("<BI", buf, pos)
        if len(buf) - pos < 5 + length:
            break
        if kind == 1 and first_snapshot is None:
            first_snapshot = now
        pos += 5 + length
        if kind == 6:
            done = True
            break
    if done:
        break
    if pos > (1 << 22):
        del buf[:pos]
        pos = 0
complete = time.monotonic() - started
conn.close()
print("%.3f %.3f %.3f %.3f %d" % (headers, first_byte, first_snapshot or -1, complete, total))
