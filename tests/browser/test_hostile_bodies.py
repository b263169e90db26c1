"""Bodies sent to hold memory: sockets that declare a 16 MiB sign-in, send most of it and stall.
Each route reads what it needs and no more, so they are refused before their bodies are read and
the server's memory does not move."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_server_process import Node, run  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_stalled_large_sign_ins_are_refused_before_their_bodies_are_read(tmp_path: Path):
    data = tmp_path / "data"
    run("migrate", "--data", str(data))
    node = Node(data).start()
    port = int(node.url.rsplit(":", 1)[1])
    sockets: list[socket.socket] = []
    try:
        before = rss_mib(node.process.pid)
        answers = []
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 16776202\r\n\r\n")
            try:
                s.sendall(b"a" * (256 * 1024))  # part of it, then nothing more
            except OSError:
                pass  # refused and closed while sending: what is asked
            sockets.append(s)
        for s in sockets:
            s.settimeout(10)
            try:
                answers.append(s.recv(200).split(b"\r\n", 1)[0])
            except OSError as error:
                answers.append(repr(error).encode())
        assert all(a.startswith(b"HTTP/1.1 413") for a in answers), set(answers)
        time.sleep(0.5)
        grown = rss_mib(node.process.pid) - before
        assert grown < 64, f"100 stalled 16 MiB sign-ins grew the server by {grown:.0f} MiB"
        # A sign-in of a sensible size is still answered, and a JSON body over 8 KiB names the limit.
        r = requests.post(node.url + "/api/v1/session", json={"username": "x" * 10_000, "password": "y"}, timeout=10)
        assert r.status_code == 413 and "8 KiB" in r.json()["detail"], r.text
        r = requests.post(node.url + "/api/v1/session", json={"username": "nobody", "password": "wrong password"}, timeout=10)
        assert r.status_code == 401
    finally:
        for s in sockets:
            s.close()
        assert node.stop() == 0, node.log.read_text()
