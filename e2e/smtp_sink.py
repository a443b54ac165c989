#!/usr/bin/python3
"""A local SMTP sink for the end-to-end tests.

Accepts every message sent to 127.0.0.1:<port> and writes it, as received,
to <dir>/<time>-<id>.eml, preceded by one `Delivered-To:` header per
envelope recipient and a `Return-Path:` header (as a mail delivery agent
would). Each file is written under a temporary name and renamed, so a reader
never sees half a message. Stops cleanly on SIGTERM or SIGINT.

Uses aiosmtpd (Debian: python3-aiosmtpd) and nothing else outside the
standard library.

    smtp_sink.py --port 2525 --dir /tmp/mail [--host 127.0.0.1]
"""

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid

from aiosmtpd.smtp import SMTP


class MaildirHandler:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        head = "".join(f"Delivered-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos)
        head = f"Return-Path: <{envelope.mail_from}>\r\n" + head
        name = f"{time.time_ns()}-{uuid.uuid4().hex}"
        tmp = os.path.join(self.directory, f".{name}.tmp")
        final = os.path.join(self.directory, f"{name}.eml")
        with open(tmp, "wb") as f:
            f.write(head.encode("ascii", "replace"))
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self.count += 1
        print(
            f"smtp-sink: {envelope.mail_from} -> {', '.join(envelope.rcpt_tos)} ({len(content)} bytes) saved as {final}",
            flush=True,
        )
        return "250 Message accepted for delivery"


async def serve(host, port, directory):
    loop = asyncio.get_running_loop()
    handler = MaildirHandler(directory)
    # An explicit hostname: the default (socket.getfqdn()) can hang for
    # seconds on a machine without DNS.
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtp-sink.tollgate.test", decode_data=False, enable_SMTPUTF8=True),
        host=host,
        port=port,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"smtp-sink: listening on {host}:{port}, writing to {directory}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()
    print(f"smtp-sink: stopped after {handler.count} message(s)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True, help="directory for the .eml files (created if missing)")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    try:
        asyncio.run(serve(args.host, args.port, os.path.abspath(args.dir)))
    except OSError as err:
        print(f"smtp-sink: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
