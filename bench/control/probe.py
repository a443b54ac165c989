#!/usr/bin/env python3
"""Propagation probe for bench/control/run: from the admin API call that suspends (or resumes)
an application to the first answer of each agent that shows it.

    probe.py ADMIN_BASE ADMIN_TOKEN APP_ID KEY_URL_PATH TRIALS AGENT_URL...

Each trial: every agent is polled on a keep-alive connection of its own (one thread per agent,
a request every millisecond at most), the clock starts right before the admin request is sent,
and each agent's time is taken when it first answers 403 (suspended) or 200 (resumed). The
next trial starts when every agent has shown the change, so trials never overlap. Prints one
JSON object: per-trial times in ms for suspensions and resumptions, per agent.
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

TIMEOUT_S = 10.0


class Poller(threading.Thread):
    """Polls one agent; on `arm(status, t0)` records when `status` is first seen."""

    def __init__(self, base, path):
        super().__init__(daemon=True)
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port
        self.path = path
        self.cond = threading.Condition()
        self.want = None
        self.t0 = 0.0
        self.result = None
        self.done = False
        self.stop = False
        self.conn = None

    def status(self):
        for _ in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                self.conn.request("GET", self.path)
                resp = self.conn.getresponse()
                resp.read()
                return resp.status
            except (OSError, http.client.HTTPException):
                self.conn = None
        return 0

    def arm(self, want, t0):
        with self.cond:
            self.want, self.t0, self.result, self.done = want, t0, None, False
            self.cond.notify()

    def wait(self):
        with self.cond:
            while not self.done:
                self.cond.wait()
            return self.result

    def run(self):
        while True:
            with self.cond:
                while self.want is None and not self.stop:
                    self.cond.wait()
                if self.stop:
                    return
                want, t0 = self.want, self.t0
            while True:
                got = self.status()
                now = time.monotonic()
                if got == want or now - t0 > TIMEOUT_S:
                    with self.cond:
                        self.result = (now - t0) * 1000.0 if got == want else None
                        self.want, self.done = None, True
                        self.cond.notify_all()
                    break
                time.sleep(0.001)


def admin_action(base, token, app_id, action):
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = json.dumps({"action": action})
    conn.request(
        "POST",
        f"/admin/api/v1/applications/{app_id}/actions",
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    text = resp.read()
    conn.close()
    if resp.status != 200:
        sys.exit(f"probe: {action} answered {resp.status}: {text[:300]!r}")


def main():
    base, token, app_id, path, trials, *agents = sys.argv[1:]
    pollers = [Poller(a, path) for a in agents]
    for p in pollers:
        p.start()
    # Start from a live application that every agent admits.
    for p in pollers:
        if p.status() != 200:
            sys.exit(f"probe: {p.host}:{p.port} does not admit the probe key before the trials")
    out = {"suspend": [[] for _ in agents], "resume": [[] for _ in agents], "admin_ms": []}
    for trial in range(int(trials)):
        for action, want in (("suspend", 403), ("resume", 200)):
            t0 = time.monotonic()
            for p in pollers:
                p.arm(want, t0)
            admin_action(base, token, app_id, action)
            out["admin_ms"].append((time.monotonic() - t0) * 1000.0)
            for i, p in enumerate(pollers):
                out[action][i].append(p.wait())
        print(f"probe: trial {trial + 1}: suspend {[round(x[-1] or -1, 1) for x in out['suspend']]} ms",
              file=sys.stderr)
    for p in pollers:
        with p.cond:
            p.stop = True
            p.cond.notify()
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
