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


def test_stalled_uploads_go_to_disk_and_a_large_one_arrives_byte_exact(tmp_path: Path):
    """Firmware packages are streamed to a temporary file as they arrive: 40 uploads that declare
    16 MiB, send 4 MiB and stall hold neither the memory budget (each takes a small buffer's share,
    so none is refused 503) nor the memory; a 15 MiB package sent in pieces meanwhile is stored byte
    for byte; the stalled ones leave no temporary file behind once their sockets close."""
    import hashlib
    import os

    data = tmp_path / "data"
    run("demo", "--data", str(data))
    token = run("token", "create", "--data", str(data), "--username", "staff", "--name", "t").stdout.strip().splitlines()[-1]
    auth = {"Authorization": "Bearer " + token}
    node = Node(data).start()
    port = int(node.url.rsplit(":", 1)[1])
    sockets: list[socket.socket] = []
    try:
        cid = requests.get(node.url + "/api/v1/communities", headers=auth, timeout=10).json()["items"][0]["id"]
        product = requests.post(f"{node.url}/api/v1/communities/{cid}/products", json={"library": "smoke_detector"}, headers=auth, timeout=10)
        assert product.status_code == 201, product.text
        pk = product.json()["productKey"]
        before = rss_mib(node.process.pid)
        for i in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(f"POST /api/v1/products/{pk}/firmware?version=9.{i} HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
                      f"Content-Length: {16 << 20}\r\n\r\n".encode())
            s.sendall(os.urandom(1 << 20) * 4)
            sockets.append(s)
        time.sleep(1.0)
        for s in sockets:  # none was answered (no 503): each is being read to disk
            s.setblocking(False)
            try:
                answer = s.recv(100)
            except BlockingIOError:
                continue
            raise AssertionError(f"a stalled upload was answered or closed: {answer[:40]!r}")
        grown = rss_mib(node.process.pid) - before
        assert grown < 96, f"40 stalled uploads of 4 MiB each grew the server by {grown:.0f} MiB"

        package = os.urandom(15 << 20)
        pieces = (package[i:i + 65536] for i in range(0, len(package), 65536))  # chunked, as it comes
        r = requests.post(f"{node.url}/api/v1/products/{pk}/firmware", params={"version": "2.0.0"}, data=pieces,
                          headers={**auth, "Content-Type": "application/octet-stream"}, timeout=60)
        assert r.status_code == 201, r.text
        firmware = r.json()
        assert firmware["size"] == len(package) and firmware["sha256"] == hashlib.sha256(package).hexdigest()
        stored = data / "attachments" / "firmware" / pk / f"{firmware['id']}.bin"
        assert stored.read_bytes() == package
    finally:
        for s in sockets:
            s.close()
    incoming = data / "attachments" / "incoming"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(incoming.iterdir()):
        time.sleep(0.2)
    left = list(incoming.iterdir())
    assert node.stop() == 0
    assert left == [], f"temporary files left by the cut-off uploads: {len(left)}"
