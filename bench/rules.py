#!/usr/bin/env python3
"""Rules: from an MQTT publish to the alarm on the event log, under load, and idle timers' cost.

Usage: python3 bench/rules.py        (after `swift build -c release`; needs paho-mqtt<2 and requests)

Environment: LINLI_BIN (default .build/release/linli), DEVICES (1000), RULES (1000), RATE (5000),
PROBES (200), TIMER_RULES (10: absence rules over every bench device, so DEVICES × TIMER_RULES
armed timers), IDLE (60 s of idle CPU measured before and after arming them).

What it does: a fresh data folder with the demo community and DEVICES bench devices (`linli bench
mqtt --provision-only`) plus one probe device; `linli serve` on free loopback ports; RULES threshold
rules on the bench devices (CurrentTemperature > 90, which the bench's 15–25 °C never reaches, so
every post is evaluated and none fires) and one on the probe (> 100 raises the alarm `probe`);
`linli bench mqtt` posting RATE/s at QoS 1 from the bench devices; meanwhile the probe publishes
101 (timed), waits for `alarm.raised` on the event stream, publishes 20 to clear it, PROBES times.
Each probe is timed twice: to the moment the server appended alarm.raised to its event log (the
event's `at`, on this machine's clock, which the server shares), and to the moment this script
read it from `GET /api/v1/events/stream` (which adds the stream's delivery and Python's wake-up).
Then, with no load, the server's CPU over IDLE seconds, before and after TIMER_RULES absence rules
arm their timers. Prints one markdown table. Every process it started is stopped on exit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("LINLI_BIN", ROOT / ".build/release/linli"))
DEVICES = int(os.environ.get("DEVICES", 1000))
RULES = int(os.environ.get("RULES", 1000))
RATE = int(os.environ.get("RATE", 5000))
PROBES = int(os.environ.get("PROBES", 200))
TIMER_RULES = int(os.environ.get("TIMER_RULES", 10))
IDLE = int(os.environ.get("IDLE", 60))
RUN = "r"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def linli(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run([str(BIN), *args], input=stdin, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="linli-rules-bench-"))
    data = work / "data"
    processes: list[subprocess.Popen] = []
    try:
        linli("demo", "--data", str(data))
        linli("user", "create", "--data", str(data), "--username", "ops", "--role", "platform_admin", "--password-stdin", stdin="bench-password-1\n")
        token = linli("token", "create", "--data", str(data), "--username", "ops", "--name", "bench")
        subprocess.run([str(BIN), "bench", "mqtt", "--data", str(data), "--devices", str(DEVICES), "--run-id", RUN, "--provision-only"], check=True,
                       capture_output=True)
        pk, dn, secret = linli("device", "create", "--data", str(data), "--product-key", "a1benchmark", "--name", "probe-1").split()
        http, port = free_port(), free_port()
        server = subprocess.Popen([str(BIN), "serve", "--data", str(data), "--http", f"127.0.0.1:{http}", "--mqtt", f"127.0.0.1:{port}", "--log-level", "warning"],
                                  stdout=open(work / "serve.log", "w"), stderr=subprocess.STDOUT)
        processes.append(server)
        base = f"http://127.0.0.1:{http}"
        headers = {"Authorization": "Bearer " + token}
        for _ in range(300):
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        community = requests.get(base + "/api/v1/communities", headers=headers, timeout=10).json()["items"][0]["id"]

        def rule(body: dict) -> None:
            r = requests.post(f"{base}/api/v1/communities/{community}/rules", headers=headers, json=body, timeout=30)
            assert r.status_code == 201, r.text

        print(f"creating {RULES} rules", file=sys.stderr)
        for i in range(RULES):
            rule({"name": f"bench {i}", "triggers": [{"type": "property", "productKey": pk, "deviceName": f"bench-{RUN}-{i % DEVICES}",
                                                      "property": "CurrentTemperature", "op": ">", "value": 90}],
                  "actions": [{"type": "alarm", "alarmType": "hot", "severity": "major"}]})
        rule({"name": "probe", "triggers": [{"type": "property", "productKey": pk, "deviceName": dn, "property": "CurrentTemperature", "op": ">", "value": 100}],
              "actions": [{"type": "alarm", "alarmType": "probe", "severity": "critical"}]})
        probe_id = requests.get(f"{base}/api/v1/devices/{pk}/{dn}", headers=headers, timeout=10).json()["id"]

        def gauge(name: str) -> float:
            for line in requests.get(base + "/metrics", timeout=10).text.splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
            return 0.0

        def installed(rules: int, timers: int = 0) -> None:
            # Rules are taken up by the engine after the API stores them; probe only once all are.
            deadline = time.monotonic() + 300
            while gauge("linli_rules_installed") < rules or gauge("linli_rule_timers_armed") < timers:
                assert time.monotonic() < deadline, "rules not installed within 300 s"
                time.sleep(0.5)

        installed(RULES + 1)

        # The event stream, read in a thread: when each alarm event about the probe arrives, and
        # (by the server's clock) when each alarm.raised was appended to the log.
        events: queue.Queue = queue.Queue()
        appended: dict[str, int] = {}

        def follow() -> None:
            with requests.get(base + "/api/v1/events/stream", headers=headers, stream=True, timeout=600) as r:
                kind = None
                for line in r.iter_lines(decode_unicode=True):
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind in ("alarm.raised", "alarm.cleared"):
                        event = json.loads(line[6:])
                        payload = json.loads(event["payload"])
                        if payload.get("sourceId") == probe_id:
                            events.put((kind, time.monotonic(), event["at"]))
                            if kind == "alarm.raised":
                                appended[event["subjectId"]] = event["at"]

        threading.Thread(target=follow, daemon=True).start()
        time.sleep(1)

        load_seconds = PROBES * 0.2 + 30
        generator = subprocess.Popen([str(BIN), "bench", "mqtt", "--data", str(data), "--mqtt", f"127.0.0.1:{port}", "--devices", str(DEVICES),
                                      "--rate", str(RATE), "--qos", "1", "--duration", str(int(load_seconds)), "--warmup", "3", "--run-id", RUN,
                                      "--server-pid", str(server.pid)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        processes.append(generator)
        time.sleep(8)

        ts = int(time.time() * 1000)
        content = f"clientId{dn}deviceName{dn}productKey{pk}timestamp{ts}"
        password = hmac.new(secret.encode(), content.encode(), hashlib.sha256).hexdigest()
        client = mqtt.Client(client_id=f"{dn}|securemode=3,signmethod=hmacsha256,timestamp={ts}|", protocol=mqtt.MQTTv311)
        client.username_pw_set(f"{dn}&{pk}", password)
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        time.sleep(1)
        topic = f"/sys/{pk}/{dn}/thing/event/property/post"
        latencies: list[float] = []
        on_log: list[float] = []
        missed = 0
        for i in range(PROBES):
            # An event that came after its probe gave up belongs to no probe: drop it.
            while not events.empty():
                events.get_nowait()
            start, wall = time.monotonic(), time.time() * 1000
            client.publish(topic, json.dumps({"id": str(i), "version": "1.0", "params": {"CurrentTemperature": 101}}), qos=1)
            try:
                while True:
                    kind, at, logged = events.get(timeout=5)
                    if kind == "alarm.raised":
                        latencies.append((at - start) * 1000)
                        # The server runs on this machine: its clock is the probe's.
                        on_log.append(logged - wall)
                        break
            except queue.Empty:
                missed += 1
            client.publish(topic, json.dumps({"id": f"c{i}", "version": "1.0", "params": {"CurrentTemperature": 20}}), qos=1)
            try:
                while events.get(timeout=5)[0] != "alarm.cleared":
                    pass
            except queue.Empty:
                missed += 1
            time.sleep(0.05)
        client.disconnect()
        client.loop_stop()
        # Inside the server: the post's arrival (the alarm's firstAt) to alarm.raised on the log.
        probe_alarms = requests.get(f"{base}/api/v1/communities/{community}/alarms", params={"sourceId": probe_id, "limit": 500},
                                    headers=headers, timeout=10).json()["items"]
        inside = [appended[a["id"]] - a["firstAt"] for a in probe_alarms if a["id"] in appended]
        output, _ = generator.communicate(timeout=load_seconds + 120)
        result = json.loads(output.strip().splitlines()[-1])

        # Idle: no load, the server's own CPU, before and after arming the absence timers.
        time.sleep(5)
        before = cpu_seconds(server.pid)
        time.sleep(IDLE)
        idle_before = (cpu_seconds(server.pid) - before) / IDLE * 100
        for i in range(TIMER_RULES):
            rule({"name": f"absence {i}", "triggers": [{"type": "absence", "productKey": pk, "forSeconds": 86400}],
                  "actions": [{"type": "alarm", "alarmType": f"silent-{i}", "severity": "minor"}]})
        installed(RULES + 1 + TIMER_RULES, TIMER_RULES * (DEVICES + 1))
        time.sleep(5)
        before = cpu_seconds(server.pid)
        time.sleep(IDLE)
        idle_after = (cpu_seconds(server.pid) - before) / IDLE * 100
        rss = int(next(l for l in Path(f"/proc/{server.pid}/status").read_text().splitlines() if l.startswith("VmRSS")).split()[1]) // 1024

        print("| measure | value |")
        print("|---|---:|")
        acked = result.get("ackedPerSecond")
        print(f"| load: PUBACKed posts/s (offered {RATE}/s, QoS 1, {DEVICES} devices) | {acked:,.0f} |" if acked else "| load | ? |")
        print(f"| rules evaluated on every post | {RULES} (+1 probe) |")
        print(f"| publish → alarm.raised appended to the event log (ms clock), p50 / p90 / p99 / max ({len(on_log)} probes, {missed} missed) | "
              f"{percentile(on_log, 50):.0f} / {percentile(on_log, 90):.0f} / {percentile(on_log, 99):.0f} / {max(on_log):.0f} ms |")
        print(f"| publish → alarm.raised read from the event stream by a client, p50 / p90 / p99 / max | "
              f"{percentile(latencies, 50):.1f} / {percentile(latencies, 90):.1f} / {percentile(latencies, 99):.1f} / {max(latencies):.1f} ms |")
        if inside:
            print(f"| of which inside the server: post received → alarm.raised appended, p50 / p99 / max ({len(inside)}) | "
                  f"{percentile(inside, 50):.0f} / {percentile(inside, 99):.0f} / {max(inside):.0f} ms |")
        print(f"| idle server CPU, no timers armed ({IDLE} s) | {idle_before:.2f} % of one core |")
        print(f"| idle server CPU, {TIMER_RULES * (DEVICES + 1):,} absence timers armed ({IDLE} s) | {idle_after:.2f} % of one core |")
        print(f"| server RSS at the end | {rss} MiB |")
    finally:
        for p in reversed(processes):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
