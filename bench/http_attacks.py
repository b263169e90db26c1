#!/usr/bin/env python3
"""What hostile HTTP clients do to a Linli server: its memory, and how its health check, a
signed-in request and an MQTT sign-in fare meanwhile.

Usage: LINLI_BIN=.build/release/linli python3 bench/http_attacks.py [--label NAME]

Builds nothing (run `swift build -c release` first). A fresh data folder with the demo community
(`linli demo`), an API token for `staff` and an MQTT integration account; `linli serve` on free
loopback ports. While probes run from 127.0.0.1 (a `GET /healthz` every 50 ms, a signed-in
`GET /api/v1/communities` every 250 ms, an MQTT CONNECT of the integration account every 500 ms,
each on a new connection with a 2 s timeout) and the server's RSS is read every 100 ms, it runs,
each after 5 s of quiet and held for HOLD seconds (default 15):

  bodies   SOCKETS_BODIES (200) sockets each `POST /api/v1/session` declaring 16,776,202 bytes,
           send BODY_MIB (12) MiB of it and stall;
  sockets  IDLE_SOCKETS (19,000) silent TCP connections to the HTTP port from 127.0.0.2, opened one
           after another as fast as they are accepted (for 90 s at most), then held; the server
           closes an address's oldest waiting sockets beyond its cap, which this counts as held.

It prints one line of JSON per attack and a markdown table: RSS before, at its peak and 5 s after;
each probe's answered share, p50 and p99. Everything it started is stopped on exit.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("LINLI_BIN", REPO / ".build/release/linli"))
if not BIN.is_absolute():
    BIN = REPO / BIN
HOLD = float(os.environ.get("HOLD", "15"))
SOCKETS_BODIES = int(os.environ.get("SOCKETS_BODIES", "200"))
BODY_MIB = int(os.environ.get("BODY_MIB", "12"))
IDLE_SOCKETS = int(os.environ.get("IDLE_SOCKETS", "19000"))
PASSWORD = "attack-bench-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    """The status of one GET on a new connection, or raises on timeout/refusal."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(2)
        lines = [f"GET {path} HTTP/1.1", "Host: bench", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = s.recv(64)
        if not head.startswith(b"HTTP/1.1 "):
            raise OSError("no status line")
        return int(head[9:12])


def mqtt_connect(port: int, username: str, password: str) -> int:
    """The CONNACK return code of an MQTT 3.1.1 CONNECT on a new connection."""
    def s16(b: bytes) -> bytes:
        return struct.pack("!H", len(b)) + b
    body = s16(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30)
    body += s16(f"attack-probe-{time.monotonic_ns()}".encode()) + s16(username.encode()) + s16(password.encode())
    packet = bytes([0x10, len(body)]) + body
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(2)
        s.sendall(packet)
        ack = s.recv(4)
        if len(ack) < 4 or ack[0] != 0x20:
            raise OSError("no CONNACK")
        s.sendall(bytes([0xE0, 0]))
        return ack[3]


class Probes:
    """Probes and memory samples, each attack's slice of them kept apart."""

    def __init__(self, pid: int, http: int, mqtt: int, token: str):
        self.pid, self.http, self.mqtt, self.token = pid, http, mqtt, token
        self.samples: dict[str, list[tuple[float, float | None]]] = {"healthz": [], "signed-in": [], "mqtt": []}
        self.rss: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.loop, args=("healthz", 0.05, lambda: http_get(http, "/healthz") == 200), daemon=True),
            threading.Thread(target=self.loop, args=("signed-in", 0.25, lambda: http_get(
                http, "/api/v1/communities", {"Authorization": "Bearer " + token}) == 200), daemon=True),
            threading.Thread(target=self.loop, args=("mqtt", 0.5, lambda: mqtt_connect(mqtt, "attack-bench", PASSWORD) == 0), daemon=True),
            threading.Thread(target=self.memory, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def loop(self, name: str, every: float, probe) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                ok = probe()
            except OSError:
                ok = False
            self.samples[name].append((start, time.monotonic() - start if ok else None))
            time.sleep(max(0.0, every - (time.monotonic() - start)))

    def memory(self) -> None:
        while not self.stop.is_set():
            value = rss_mib(self.pid)
            if value is not None:
                self.rss.append((time.monotonic(), value))
            time.sleep(0.1)

    def between(self, a: float, b: float) -> dict:
        out = {}
        for name, samples in self.samples.items():
            window = [d for (t, d) in samples if a <= t < b]
            answered = sorted(d * 1000 for d in window if d is not None)
            out[name] = {
                "probes": len(window), "answered": len(answered),
                "p50Ms": round(statistics.median(answered), 1) if answered else None,
                "p99Ms": round(answered[min(len(answered) - 1, int(len(answered) * 0.99))], 1) if answered else None,
            }
        rss = [v for (t, v) in self.rss if a <= t < b]
        out["peakRssMiB"] = round(max(rss), 1) if rss else None
        return out


def rss_at(probes: Probes, t: float) -> float | None:
    before = [v for (s, v) in probes.rss if s <= t]
    return round(before[-1], 1) if before else None


def attack_bodies(port: int) -> list[socket.socket]:
    held = []
    chunk = b"a" * (1 << 20)
    for _ in range(SOCKETS_BODIES):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            continue
        held.append(s)
        try:
            s.sendall(b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 16776202\r\n\r\n")
            for _ in range(BODY_MIB):
                s.sendall(chunk)
        except OSError:
            pass  # refused and closed while sending: what the server should do
    return held


def attack_sockets(port: int) -> list[socket.socket]:
    held = []
    deadline = time.monotonic() + 90  # opening them is part of the attack; bounded all the same
    for _ in range(IDLE_SOCKETS):
        if time.monotonic() > deadline:
            break
        try:
            s = socket.socket()
            s.setblocking(True)
            s.settimeout(2)
            s.bind(("127.0.0.2", 0))
            s.connect(("127.0.0.1", port))
            held.append(s)
        except OSError:
            s.close()
    return held


def main() -> int:
    label = sys.argv[sys.argv.index("--label") + 1] if "--label" in sys.argv else str(BIN)
    if not BIN.exists():
        print(f"{BIN} does not exist: swift build -c release first, or set LINLI_BIN", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="linli-attacks-"))
    data = work / "data"
    server = None
    try:
        def run(*args: str, stdin: str | None = None) -> str:
            return subprocess.run([str(BIN), *args], input=stdin, capture_output=True, text=True, check=True).stdout
        run("demo", "--data", str(data))
        token = run("token", "create", "--data", str(data), "--username", "staff", "--name", "bench").strip().splitlines()[-1]
        run("mqtt-account", "create", "--data", str(data), "--username", "attack-bench", "--description", "bench",
            "--publish", "bench/#", "--subscribe", "bench/#", "--password-stdin", stdin=PASSWORD + "\n")
        http, mqtt = free_port(), free_port()
        log = open(work / "server.log", "w")
        server = subprocess.Popen([str(BIN), "serve", "--data", str(data), "--http", f"127.0.0.1:{http}",
                                   "--mqtt", f"127.0.0.1:{mqtt}", "--mqtt-tls", "off", "--log-level", "warning"],
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        for _ in range(240):
            try:
                if http_get(http, "/readyz") == 200:
                    break
            except OSError:
                pass
            time.sleep(0.25)
        probes = Probes(server.pid, http, mqtt, token)
        results = []
        for name, attack in (("bodies", attack_bodies), ("sockets", attack_sockets)):
            time.sleep(5)
            start = time.monotonic()
            quiet = probes.between(start - 5, start)
            held = attack(http)
            opened = time.monotonic()
            time.sleep(max(0.0, HOLD - (opened - start)))
            end = time.monotonic()
            during = probes.between(start, end)
            for s in held:
                s.close()
            time.sleep(5)
            alive = server.poll() is None
            results.append({
                "attack": name, "label": label, "held": len(held), "rssBeforeMiB": rss_at(probes, start),
                "rssPeakMiB": during["peakRssMiB"], "rssAfterMiB": rss_at(probes, time.monotonic()),
                "serverAlive": alive, "quiet": {k: v for k, v in quiet.items() if k != "peakRssMiB"},
                "during": {k: v for k, v in during.items() if k != "peakRssMiB"},
            })
            print(json.dumps(results[-1]), flush=True)
            if not alive:
                break
        probes.stop.set()
        print()
        print(f"## HTTP attacks: {label}")
        print()
        print("| attack | sockets held | RSS before → peak → 5 s after (MiB) | /healthz answered, p50 / p99 ms | signed-in request | MQTT CONNECT |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in results:
            def cell(p: dict) -> str:
                return f"{p['answered']}/{p['probes']}, {p['p50Ms']} / {p['p99Ms']}"
            d = r["during"]
            print(f"| {r['attack']} | {r['held']:,} | {r['rssBeforeMiB']} → {r['rssPeakMiB']} → {r['rssAfterMiB']} "
                  f"| {cell(d['healthz'])} | {cell(d['signed-in'])} | {cell(d['mqtt'])} |")
        return 0
    finally:
        if server and server.poll() is None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
