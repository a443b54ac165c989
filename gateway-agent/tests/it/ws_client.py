"""A real WebSocket client (Python `websockets`, Debian's python3-websockets) for the agent's
upgrade tests. Prints one line per event, flushed, so the Rust test can follow it.

    ws_client.py echo URL      send a text and a binary message, print each echo, close (1000)
    ws_client.py refused URL   print `refused <status>` if the handshake is refused
    ws_client.py hold URL      echo once, print `open`, then wait for the server side to close
                               the connection and print `closed <code>` (no pings are sent)
"""

import asyncio
import sys

import websockets


def say(*words):
    print(*words, flush=True)


async def echo(url):
    async with websockets.connect(url, ping_interval=None) as ws:
        await ws.send("hello through the agent")
        say("text", await ws.recv())
        await ws.send(bytes(range(256)) * 64)
        data = await ws.recv()
        say("binary", len(data), data == bytes(range(256)) * 64)
    say("done", ws.close_code)


async def refused(url):
    try:
        async with websockets.connect(url, ping_interval=None):
            say("open")
    except websockets.exceptions.InvalidStatusCode as refused:
        say("refused", refused.status_code)


async def hold(url):
    async with websockets.connect(url, ping_interval=None, close_timeout=1) as ws:
        await ws.send("still there?")
        say("echo", await ws.recv())
        say("open")
        try:
            # Bounded: the test expects the agent to close well before this.
            await asyncio.wait_for(ws.recv(), timeout=30)
            say("unexpected message")
        except websockets.exceptions.ConnectionClosed as closed:
            say("closed", closed.code)
        except asyncio.TimeoutError:
            say("still open")


mode, url = sys.argv[1], sys.argv[2]
asyncio.run({"echo": echo, "refused": refused, "hold": hold}[mode](url))
