#!/usr/bin/env python3
"""Config pushes for bench/control/run: flips one application between suspended and live
through the admin API every INTERVAL seconds, on one keep-alive connection, until killed.
Appends a line to PUSHES for every call the server accepted.

    pusher.py BASE_URL ADMIN_TOKEN APPLICATION_ID INTERVAL PUSHES

One process for the whole window, as an admin's browser or script would be: a new `curl` and
`sleep` per push (the earlier pusher) were two process starts every 0.2 s on the machine being
measured, which is the load generator's cost, not the control plane's.
"""
import http.client
import json
import sys
import time
import urllib.parse


def connect(base):
    parts = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)


def main():
    base, token, app, interval, pushes = sys.argv[1:6]
    interval = float(interval)
    path = f"/admin/api/v1/applications/{app}/actions"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn = connect(base)
    action = "suspend"
    due = time.monotonic()
    with open(pushes, "a", buffering=1) as out:
        while True:
            try:
                conn.request("POST", path, json.dumps({"action": action}), headers)
                response = conn.getresponse()
                response.read()
                if 200 <= response.status < 300:
                    out.write("\n")
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = connect(base)
            action = "resume" if action == "suspend" else "suspend"
            # On schedule; a push slower than the interval delays the next, never bunches them.
            due = max(due + interval, time.monotonic())
            time.sleep(max(0.0, due - time.monotonic()))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
