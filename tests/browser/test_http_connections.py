"""Sockets held against the HTTP server: per-address and total caps that close the oldest waiting
socket, a head deadline that dripped bytes do not move, a minimum body rate, and a health check
that answers when every socket is busy. Real sockets against the built binary; the limits are set
small (LINLI_HTTP_…) so that the test needs hundreds of sockets, not tens of thousands."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_server_process import Node, free_port, run  # noqa: E402


def open_silent(source: str, port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        sockets.append(s)
    return sockets


def closed_by_server(s: socket.socket, within: float) -> bool:
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def node(tmp_path: Path, **env: str) -> Node:
    data = tmp_path / "data"
    run("migrate", "--data", str(data))
    return Node(data, mqtt_port=free_port(), env={f"LINLI_HTTP_{k.upper()}": v for k, v in env.items()}).start()


def test_caps_close_the_oldest_waiting_sockets_and_the_server_still_answers(tmp_path: Path):
    n = node(tmp_path, max_connections="300", connections_per_address="100", header_seconds="20")
    port = n.port
    held: list[socket.socket] = []
    try:
        # One address, 150 silent sockets: it keeps its newest 100; the oldest 50 are closed.
        first = open_silent("127.0.0.2", port, 150)
        held += first
        time.sleep(0.5)
        closed = [i for i, s in enumerate(first) if closed_by_server(s, 0.05)]
        # The server numbers sockets as its event loops take them, which may interleave a little
        # with the order they were opened in.
        assert len(closed) == 50 and sum(i < 100 for i in closed) >= 45, closed
        # More addresses than the total allows: the server holds 300 at most, the oldest waiting go.
        for source in ("127.0.0.3", "127.0.0.4", "127.0.0.5"):
            held += open_silent(source, port, 100)
        time.sleep(0.5)
        assert open_files(n.process.pid) < 300 + 100, "about 300 HTTP sockets, the broker's and the database's"
        # The health check and a sign-in still answer at once, and a device still connects over MQTT.
        started = time.monotonic()
        assert requests.get(n.url + "/healthz", timeout=5).status_code == 200
        assert requests.post(n.url + "/api/v1/session", json={"username": "x", "password": "y"}, timeout=5).status_code == 401
        assert time.monotonic() - started < 3
        connected = []
        c = mqtt.Client(client_id="probe", protocol=mqtt.MQTTv311)
        c.on_connect = lambda cl, ud, flags, rc: connected.append(rc)
        c.connect("127.0.0.1", int(n.mqtt.rsplit(":", 1)[1]), keepalive=10)
        c.loop_start()
        deadline = time.monotonic() + 5
        while not connected and time.monotonic() < deadline:
            time.sleep(0.05)
        c.loop_stop()
        assert connected, "the broker answered CONNACK"  # refused as anonymous, but answered
        metrics = requests.get(n.url + "/metrics", timeout=5).text
        assert "linli_http_connections " in metrics or "linli_http_connections{" in metrics
    finally:
        for s in held:
            s.close()
        n.stop()


def test_a_dripped_head_and_a_trickled_body_are_closed(tmp_path: Path):
    n = node(tmp_path, header_seconds="3", min_body_rate="1024")
    try:
        # A head dripped a header line a second: closed at its deadline, 3 s after opening.
        s = socket.create_connection(("127.0.0.1", n.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        opened = time.monotonic()
        closed_at = None
        for i in range(20):
            try:
                s.sendall(f"X-Drip-{i}: a\r\n".encode())
            except OSError:
                closed_at = time.monotonic()
                break
            if closed_by_server(s, 1.0):
                closed_at = time.monotonic()
                break
        assert closed_at is not None and 2.5 <= closed_at - opened <= 6, closed_at and closed_at - opened
        s.close()
        # A body at 20 bytes a second: closed once it has had 10 s, not held for the whole upload.
        b = socket.create_connection(("127.0.0.1", n.port))
        b.sendall(b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n")
        opened = time.monotonic()
        closed_at = None
        while time.monotonic() - opened < 30:
            try:
                b.sendall(b"a" * 10)
            except OSError:
                closed_at = time.monotonic()
                break
            if closed_by_server(b, 0.5):
                closed_at = time.monotonic()
                break
        assert closed_at is not None and 9 <= closed_at - opened <= 20, closed_at and closed_at - opened
        b.close()
        # A request at a normal pace is served.
        assert requests.get(n.url + "/healthz", timeout=5).status_code == 200
    finally:
        n.stop()


def test_when_every_socket_is_busy_a_health_check_still_answers(tmp_path: Path):
    n = node(tmp_path, max_connections="20", connections_per_address="100", min_body_rate="0")
    busy: list[socket.socket] = []
    try:
        # Twenty requests under way: each has sent its head and part of a body.
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", n.port))
            s.sendall(b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            busy.append(s)
        time.sleep(0.5)
        assert requests.get(n.url + "/healthz", timeout=5).status_code == 200
        # The health check's socket, idle once answered, holds none of the twenty places: closing it
        # makes no room for a request that is not a health check.
        refused = requests.get(n.url + "/api/v1/openapi.yaml", timeout=5)
        assert refused.status_code == 503 and refused.headers.get("Retry-After") == "5", refused.status_code
        # The busy requests were not cut off for it.
        assert not any(closed_by_server(s, 0.01) for s in busy)
    finally:
        for s in busy:
            s.close()
        n.stop()
