#!/usr/bin/env python3
"""bench/run's report: reads the parts' raw output in a results directory and writes
results.json (every figure, its reference in the same run, the ratio and the target),
results.md (the table against the targets, then each part's own report) and SVG plots.

    python3 bench/report.py RESULTS_DIR

Python 3 standard library only; the SVG is written by hand.
"""

import json
import math
import os
import re
import sys
from html import escape

D = sys.argv[1]


def path(*p):
    return os.path.join(D, *p)


def read(*p):
    try:
        with open(path(*p)) as f:
            return f.read()
    except FileNotFoundError:
        return None


def median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


meta = {"parts": {}}
for line in (read("meta.tsv") or "").splitlines():
    f = line.split("\t")
    if f[0] == "part":
        meta["parts"][f[1]] = {"status": f[2], "elapsed_s": int(f[3])}
    else:
        meta[f[0]] = f[1]
smoke = meta.get("smoke") == "1"

figures = []


def figure(name, value, unit, target=None, ok=None, reference=None, reference_value=None, part=None, note="",
           ratio=True):
    ratio = value / reference_value if ratio and value is not None and reference_value else None
    status = "—" if ok is None else ("met" if ok else "missed")
    if smoke:
        status = "smoke run: meaningless"
    figures.append({"figure": name, "value": value, "unit": unit, "reference": reference,
                    "reference_value": reference_value, "ratio": ratio, "target": target,
                    "status": status, "part": part, "note": note})


# ---------------------------------------------------------------- gateway and latency
def gateway_part(name):
    """The raw lines of a bench/gateway run (part `gateway`, or `latency`: the same script,
    one pinned worker each)."""
    raw = read(name, "results.tsv")
    if not raw:
        return None
    runs = []
    for line in raw.splitlines():
        f = line.split()
        if len(f) < 10:
            continue
        runs.append({"round": int(f[0]), "target": f[1], "rps": num(f[2]), "p50_ms": num(f[3]), "p99_ms": num(f[4]),
                     "errors": int(f[5]), "cpu_us": num(f[6]), "busy_pct": num(f[7]), "bench_pct": num(f[8]),
                     "load1": num(f[9])})
    targets = []
    for r in runs:
        if r["target"] not in targets:
            targets.append(r["target"])
    med = {t: {k: median([r[k] for r in runs if r["target"] == t]) for k in ("rps", "p50_ms", "p99_ms", "cpu_us", "load1")}
           for t in targets}
    latency = []
    for line in (read(name, "latency.tsv") or "").splitlines():
        f = line.split()
        latency.append({"share": int(f[0]), "rate": int(f[1]), "target": f[2], "answered": int(f[3]), "errors": int(f[4]),
                        "p50_us": int(f[5]), "p99_us": int(f[6]), "p999_us": int(f[7]),
                        "proxy_cpu": int(f[9]) if len(f) > 9 else None})
    gmeta = dict(line.split("\t", 1) for line in (read(name, "meta.tsv") or "").splitlines() if "\t" in line)
    return {"runs": runs, "medians": med, "latency": latency, "meta": gmeta}


def open_loop_figures(latency, part, setup):
    direct = {x["share"]: x for x in latency if x["target"] == "direct"}
    nginx = {x["share"]: x for x in latency if x["target"] == "nginx"}
    for x in latency:
        if x["target"] != "agent" or x["share"] not in direct:
            continue
        d = direct[x["share"]]
        added = x["p99_us"] - d["p99_us"]
        # A generator short of CPU shows in the upstream's own figures first.
        valid = d["p99_us"] < 1000
        target = "≤ 250 µs" if x["share"] == 50 else None
        busy = "" if x.get("proxy_cpu") is None else "the agent at %d %% of a core" % x["proxy_cpu"]
        n = nginx.get(x["share"])
        if n:
            busy += "; nginx added %d µs at %d %% of a core" % (
                n["p99_us"] - d["p99_us"], n["proxy_cpu"] if n.get("proxy_cpu") is not None else -1)
        note = busy if valid else ("unmeasured: the upstream called directly had a p99 over 1 ms, so the"
                                   " generator or the machine was saturated" + ("; " + busy if busy else ""))
        figure("added p99 at %d %% of nginx's peak (open loop, %s), agent − direct" % (x["share"], setup), added, "µs",
               target, ((added <= 250) if valid else None) if target else None, "upstream direct p99", d["p99_us"], part,
               note, ratio=False)
        figure("added p99.9 at %d %% of nginx's peak (open loop, %s), agent − direct" % (x["share"], setup),
               x["p999_us"] - d["p999_us"], "µs", None, None, "upstream direct p99.9", d["p999_us"], part, ratio=False)


gateway = gateway_part("gateway")
if gateway:
    part = "gateway"
    med = gateway["medians"]
    gmeta = gateway["meta"]
    m = lambda t, k: med.get(t, {}).get(k)
    if "agent" in med and "nginx" in med:
        figure("throughput, agent ÷ nginx, HTTP/1.1", m("agent", "rps"), "req/s", "≥ 0.9×",
               (m("agent", "rps") / m("nginx", "rps")) >= 0.9, "nginx", m("nginx", "rps"), part)
        figure("CPU per request, agent ÷ nginx, HTTP/1.1", m("agent", "cpu_us"), "µs", None, None, "nginx",
               m("nginx", "cpu_us"), part, "the ≤ 1.1× target is for one pinned worker each (part latency)")
        figure("throughput, agent ÷ upstream direct", m("agent", "rps"), "req/s", None, None, "upstream direct",
               m("direct", "rps"), part)
    if "previous" in med:
        figure("throughput, agent ÷ previous build", m("agent", "rps"), "req/s", None, None, "previous agent",
               m("previous", "rps"), part)
        figure("CPU per request, agent ÷ previous build", m("agent", "cpu_us"), "µs", None, None, "previous agent",
               m("previous", "cpu_us"), part)
    for proto, a, n in (("HTTPS", "agent-tls", "nginx-tls"), ("HTTP/2 over TLS", "agent-h2", "nginx-h2"),
                        ("cleartext HTTP/2 (h2c)", "agent-h2c", "nginx-h2c")):
        if a in med and n in med:
            figure("throughput, agent ÷ nginx, %s" % proto, m(a, "rps"), "req/s", None, None, "nginx " + proto,
                   m(n, "rps"), part)
            figure("CPU per request, agent ÷ nginx, %s" % proto, m(a, "cpu_us"), "µs", None, None, "nginx " + proto,
                   m(n, "cpu_us"), part)
    open_loop_figures(gateway["latency"], part, "2 workers each")
    wall = num(gmeta.get("scale_wall"))
    if wall is not None:
        rss, peak, size = num(gmeta.get("scale_rss")), num(gmeta.get("scale_peak")), num(gmeta.get("scale_bin_mb"))
        figure("1M keys: start → ready from config.bin (median of 3)", wall, "s", "≤ 1 s", wall <= 1, None, None, part,
               "CPU to ready %s s" % gmeta.get("scale_cpu", "?"))
        figure("1M keys: RSS 3 s after ready", rss, "MB", "≤ 150 MB", (rss or 1e9) <= 150, None, None, part)
        if peak and rss:
            figure("1M keys: peak RSS while loading ÷ steady", peak, "MB", "≤ 1.5×", peak <= 1.5 * rss, "steady RSS",
                   rss, part)
        if size:
            figure("1M keys: config.bin size", size, "MB", "≤ 64 MB", size <= 64, None, None, part)
        json_wall = num(gmeta.get("scale_json_wall"))
        if json_wall is not None:
            figure("1M keys: start → ready from config.json (one-time upgrade)", json_wall, "s", None, None, None, None,
                   part)

latency_run = gateway_part("latency")
if latency_run:
    part = "latency"
    med = latency_run["medians"]
    m = lambda t, k: med.get(t, {}).get(k)
    if "agent" in med and "nginx" in med:
        figure("CPU per request, agent ÷ nginx, one pinned worker each", m("agent", "cpu_us"), "µs", "≤ 1.1×",
               m("agent", "cpu_us") <= 1.1 * m("nginx", "cpu_us"), "nginx", m("nginx", "cpu_us"), part)
        figure("throughput, agent ÷ nginx, one pinned worker each", m("agent", "rps"), "req/s", None, None, "nginx",
               m("nginx", "rps"), part)
    open_loop_figures(latency_run["latency"], part, "one pinned worker each")

# ---------------------------------------------------------------- callgrind
callgrind = None
text = read("callgrind.md")
if text:
    ir = {}
    for line in text.splitlines():
        mm = re.match(r"\| (nginx reverse proxy|previous agent|tollgate-agent)[^|]*\| (\d+) \|", line)
        if mm:
            ir[mm.group(1)] = int(mm.group(2))
    if "nginx reverse proxy" in ir and "tollgate-agent" in ir:
        callgrind = ir
        figure("instructions per request, agent ÷ nginx (callgrind)", ir["tollgate-agent"], "instructions", None, None,
               "nginx", ir["nginx reverse proxy"], "callgrind")
        if "previous agent" in ir:
            figure("instructions per request, agent ÷ previous build", ir["tollgate-agent"], "instructions", None, None,
                   "previous agent", ir["previous agent"], "callgrind")

# ---------------------------------------------------------------- control
control = None
text = read("control.json")
if text:
    control = json.loads(text)
    s = control["propagation"]["suspend"]
    keys = control["keys"]
    figure("propagation p50, suspend → first 403, 3 agents, %d keys" % keys, s["p50_ms"], "ms", "≤ 100 ms",
           s["p50_ms"] <= 100, None, None, "control")
    figure("propagation p99, suspend → first 403, 3 agents, %d keys" % keys, s["p99_ms"], "ms", "≤ 1000 ms",
           s["p99_ms"] <= 1000, None, None, "control")
    r = control["reload"]
    if r["ratio"] is not None:
        figure("p99 during config pushes ÷ steady p99 (agent 1, %d req/s)" % r["rate"], r["pushing_p99_us"], "µs", "≤ 2×",
               r["ratio"] <= 2, "steady p99, same run", r["steady_p99_us"], "control")
    if r.get("direct_ratio") is not None:
        figure("the same for the upstream called directly in the same windows (no agent)", r["direct_pushing_p99_us"],
               "µs", None, None, "its steady p99, same run", r["direct_steady_p99_us"], "control")
    if r.get("ratio_from_send") is not None:
        figure("the same from each request's write (the generator's lateness taken out)", r["pushing_p99_from_send_us"],
               "µs", None, None, "steady p99 from write, same run", r["steady_p99_from_send_us"], "control")
    # What one push costs each part of the machine (a pushing window's CPU beyond a steady one's).
    for key, who in (("server_cpu_ms_per_push", "the server"), ("postgres_cpu_ms_per_push", "Postgres"),
                     ("agents_cpu_ms_per_push", "the 3 agents")):
        if r.get(key) is not None:
            figure("CPU per config push: %s" % who, round(r[key], 2), "ms", None, None, None, None, "control")

# ---------------------------------------------------------------- decisions
text = read("decisions.md")
if text:
    mm = re.search(r"Decisions per second on one core: (\d+) \(([\d.]+) x", text)
    if mm:
        figure("decisions per second on one core ÷ nginx return 200 (wrk)", float(mm.group(1)), "decisions/s", None, None,
               "nginx return 200", float(mm.group(1)) / float(mm.group(2)), "decisions")
    mm = re.search(r"one connection: ([\d.]+) ms with the agent, ([\d.]+) ms with return 200: the decision adds (-?\d+) us", text)
    if mm:
        added = int(mm.group(3))
        figure("p99 a decision adds through nginx auth_request (1 connection)", added, "µs", "≤ 200 µs", added <= 200,
               "auth_request → return 200 p99 (µs)", float(mm.group(2)) * 1000, "decisions", ratio=False)

result = {"meta": meta, "figures": figures, "gateway": gateway, "latency": latency_run, "callgrind": callgrind,
          "control": control}
with open(path("results.json"), "w") as f:
    json.dump(result, f, indent=1)


# ---------------------------------------------------------------- SVG
def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, float) and not v.is_integer():
        return "%.2f" % v if abs(v) < 10 else "%.1f" % v if abs(v) < 100 else "{:,.0f}".format(v)
    return "{:,.0f}".format(v)


class Svg:
    def __init__(self, width, height, title):
        self.w, self.h = width, height
        self.parts = [
            '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" '
            'aria-labelledby="t" font-family="sans-serif" font-size="12">' % (width, height, width, height),
            '<title id="t">%s</title>' % escape(title),
            '<rect width="100%" height="100%" fill="#fff"/>',
            '<text x="10" y="20" font-size="14" font-weight="bold">%s</text>' % escape(title),
        ]

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, anchor="start", size=12, fill="#222", weight="normal"):
        self.add('<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d" fill="%s" font-weight="%s">%s</text>'
                 % (x, y, anchor, size, fill, weight, escape(str(s))))

    def rect(self, x, y, w, h, fill):
        self.add('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>' % (x, y, max(w, 0), h, fill))

    def line(self, x1, y1, x2, y2, stroke="#888", dash=None, width=1):
        self.add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%s"%s/>'
                 % (x1, y1, x2, y2, stroke, width, ' stroke-dasharray="%s"' % dash if dash else ""))

    def save(self, name):
        self.add("</svg>")
        with open(path(name), "w") as f:
            f.write("\n".join(self.parts) + "\n")


COLORS = {"nginx": "#7f7f7f", "agent": "#1f6fb4", "direct": "#b8b8b8", "previous": "#9ecae1", "bare": "#c6dbef",
          "steady": "#7f7f7f", "pushing": "#1f6fb4"}


def hbars(name, title, rows, unit, note=""):
    """rows: (label, value, color). Horizontal bars with values."""
    rows = [r for r in rows if r[1] is not None]
    if not rows:
        return
    left, right, bar, gap = 230, 110, 18, 6
    width = 760
    height = 40 + len(rows) * (bar + gap) + 30
    svg = Svg(width, height, title)
    top = 35
    vmax = max(r[1] for r in rows) or 1
    span = width - left - right
    for i, (label, value, color) in enumerate(rows):
        y = top + i * (bar + gap)
        svg.text(left - 8, y + bar - 5, label, "end")
        svg.rect(left, y, span * value / vmax, bar, color)
        svg.text(left + span * value / vmax + 5, y + bar - 5, "%s %s" % (fmt(value), unit))
    if note:
        svg.text(10, height - 10, note, size=11, fill="#555")
    svg.save(name)


if gateway:
    med = gateway["medians"]
    label = {"direct": "upstream direct", "nginx": "nginx, HTTP/1.1", "bare": "bare hyper proxy", "previous": "previous agent",
             "agent": "agent, HTTP/1.1", "nginx-tls": "nginx, HTTPS", "agent-tls": "agent, HTTPS",
             "nginx-h2": "nginx, HTTP/2 over TLS", "agent-h2": "agent, HTTP/2 over TLS",
             "nginx-h2c": "nginx, h2c", "agent-h2c": "agent, h2c"}
    color = lambda t: COLORS.get(t.split("-")[0], "#999")
    load = "load average %s → %s" % (gateway["meta"].get("load_before", "?"), gateway["meta"].get("load_after", "?"))
    order = [t for t in ["direct", "nginx", "agent", "previous", "bare", "nginx-tls", "agent-tls", "nginx-h2", "agent-h2",
                         "nginx-h2c", "agent-h2c"] if t in med]
    hbars("gateway-throughput.svg", "Gateway throughput, median of rounds (requests/s, higher is better)",
          [(label[t], med[t]["rps"], color(t)) for t in order], "req/s",
          "bench/gateway, same run, 2-core machine shared with other work: %s" % load)
    hbars("gateway-cpu.svg", "Proxy CPU per request, median of rounds (µs, lower is better)",
          [(label[t], med[t]["cpu_us"], color(t)) for t in order if t != "direct"], "µs",
          "user + system time of the proxy's processes ÷ requests answered; %s" % load)

if callgrind:
    rows = [("nginx reverse proxy", callgrind["nginx reverse proxy"], COLORS["nginx"])]
    if "previous agent" in callgrind:
        rows.append(("previous agent", callgrind["previous agent"], COLORS["previous"]))
    rows.append(("tollgate-agent", callgrind["tollgate-agent"], COLORS["agent"]))
    hbars("callgrind.svg", "Instructions per proxied request (callgrind, one worker each, lower is better)", rows, "",
          "bench/callgrind: 2,000 keep-alive requests after 200; counts do not depend on the machine's load")

if control:
    # Propagation: cumulative share of (trial, agent) pairs by time, log scale 1 ms – 10 s.
    prop = control["propagation_raw"]
    svg = Svg(760, 340, "Propagation: admin API call → first answer showing it at each of 3 agents (%d keys)" % control["keys"])
    left, top, w, h = 60, 40, 660, 240
    lo, hi = 0.0, 4.0  # log10 ms
    x = lambda ms: left + w * (min(max(math.log10(max(ms, 1)), lo), hi) - lo) / (hi - lo)
    y = lambda share: top + h * (1 - share)
    for e in range(0, 5):
        svg.line(x(10 ** e), top, x(10 ** e), top + h, "#ddd")
        svg.text(x(10 ** e), top + h + 15, ("%d ms" % 10 ** e) if e < 3 else "%d s" % 10 ** (e - 3), "middle", 11)
    for share in (0, 0.5, 0.99, 1):
        svg.line(left, y(share), left + w, y(share), "#eee")
        svg.text(left - 5, y(share) + 4, "%g %%" % (share * 100), "end", 11)
    svg.line(x(100), top, x(100), top + h, "#2a9d3a", "4 3", 1.5)
    svg.text(x(100) + 3, top + 12, "p50 target 100 ms", size=11, fill="#2a9d3a")
    svg.line(x(1000), top, x(1000), top + h, "#c0392b", "4 3", 1.5)
    svg.text(x(1000) + 3, top + 26, "p99 target 1 s", size=11, fill="#c0392b")
    for action, col in (("suspend", COLORS["agent"]), ("resume", "#e08214")):
        v = sorted(t if t is not None else 1e9 for a in prop[action] for t in a)
        pts = " ".join("%.1f,%.1f" % (x(t), y((i + 1) / len(v))) for i, t in enumerate(v))
        svg.add('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>' % (pts, col))
    svg.rect(left + 10, top + h - 45, 12, 4, COLORS["agent"])
    svg.text(left + 27, top + h - 40, "suspend → first 403", size=11)
    svg.rect(left + 10, top + h - 27, 12, 4, "#e08214")
    svg.text(left + 27, top + h - 22, "resume → first 200", size=11)
    svg.text(10, 330, "bench/control/run, %d trials × 3 agents; load average %s" % (control["trials"], control["load"]["propagation"]),
             size=11, fill="#555")
    svg.save("propagation.svg")
    rows = []
    for run in control["reload"]["runs"]:
        rows.append(("round %d, %s (%d pushes)" % (run["round"], run["mode"], run["pushes"]), run["p99_us"], COLORS[run["mode"]]))
    hbars("reload.svg", "p99 of proxied requests, steady vs during config pushes (µs, open loop, lower is better)", rows, "µs",
          "bench/control/run: %d req/s to agent 1; ratio of medians %s×; load average %s" % (
              control["reload"]["rate"], fmt(control["reload"]["ratio"]), control["load"]["reload"]))

# The figures against their targets: each figure ÷ its bound (or the ratio to its reference).
rows = []
for f in figures:
    if f["target"] and f["value"] is not None:
        mm = re.search(r"([\d.]+)", f["target"].replace(",", ""))
        bound = float(mm.group(1)) if mm else None
        if f["target"].endswith("×") and f["ratio"] is not None:
            rows.append((f, f["ratio"] / bound, f["target"].startswith("≥")))
        elif bound:
            rows.append((f, f["value"] / bound, f["target"].startswith("≥")))
if rows:
    left, bar, gap = 380, 18, 6
    width, right = 780, 90
    height = 50 + len(rows) * (bar + gap) + 40
    svg = Svg(width, height, "Figures ÷ their targets, log scale 0.1–10 (1 = on the bar; green met, red missed)")
    top, span = 40, width - left - right
    # Log scale from 0.1 to 10: the bar's end is the figure, 1 is the middle line.
    xs = lambda r: left + span * (min(max(math.log10(max(r, 1e-9)), -1), 1) + 1) / 2
    for i, (f, r, higher) in enumerate(rows):
        yy = top + i * (bar + gap)
        ok = r >= 1 if higher else r <= 1
        svg.text(left - 8, yy + bar - 5, f["figure"][:58], "end", 11)
        svg.rect(left, yy, xs(r) - left, bar, "#2a9d3a" if ok else "#c0392b")
        svg.text(xs(r) + 5, yy + bar - 5, "%.2f (%s)" % (r, f["target"]), size=11)
    for tick in (0.1, 1, 10):
        svg.text(xs(tick), top + len(rows) * (bar + gap) + 12, "%g" % tick, "middle", 10, "#555")
    svg.line(xs(1), top - 5, xs(1), top + len(rows) * (bar + gap), "#222", "4 3", 1.5)
    svg.text(10, height - 10, "bench/run %s; load average %s → %s" % (meta.get("started", ""), meta.get("load_start", "?"),
                                                                     meta.get("load_end", "?")), size=11, fill="#555")
    svg.save("targets.svg")

# ---------------------------------------------------------------- Markdown
with open(path("results.md"), "w") as out:
    w = lambda *a: print(*a, file=out)
    w("# bench/run results (%s, commit %s)" % (meta.get("started", "?"), meta.get("commit", "?")))
    w()
    if smoke:
        w("**Smoke run (BENCH_SMOKE=1): debug builds and seconds-long runs; no figure below means anything.**")
        w()
    w("Machine: %s. Load average (1/5/15 min) at the start: %s; at the end: %s. %s s in all." % (
        meta.get("machine", "?"), meta.get("load_start", "?"), meta.get("load_end", "?"), meta.get("elapsed_s", "?")))
    w("Parts: " + ", ".join("%s %s (%s s)" % (k, v["status"], v["elapsed_s"]) for k, v in meta["parts"].items()) + ".")
    if meta.get("previous"):
        w("Previous build: `%s`." % meta["previous"])
    w()
    w("| figure | value | reference (same run) | ratio | target | status |")
    w("| --- | ---: | --- | ---: | --- | --- |")
    for f in figures:
        ref = "%s: %s" % (f["reference"], fmt(f["reference_value"])) if f["reference"] else ""
        ratio = "%.2f×" % f["ratio"] if f["ratio"] is not None else ""
        w("| %s | %s %s | %s | %s | %s | %s |" % (f["figure"], fmt(f["value"]), f["unit"], ref, ratio, f["target"] or "",
                                               f["status"] + (" (%s)" % f["note"] if f["note"] else "")))
    w()
    for svgname in ("targets.svg", "gateway-throughput.svg", "gateway-cpu.svg", "callgrind.svg", "propagation.svg",
                    "reload.svg"):
        if os.path.exists(path(svgname)):
            w("![%s](%s)" % (svgname[:-4], svgname))
            w()
    for part in meta["parts"]:
        text = read(part + ".md")
        if text:
            w("## Part: %s" % part)
            w()
            w(re.sub(r"(?m)^#", "##", text.strip()))
            w()
print(path("results.md"))
