"""The broker at the open-file limit. `linli serve` is started with a low RLIMIT_NOFILE (soft 256,
hard 400); it raises the soft limit to the hard one, then meets more connections than it has file
descriptors for. It must close what it cannot hold, keep HTTP and the database working, stay up,
accept clients again once the flood is gone, and stop cleanly."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import binary, free_port, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import expect, paho  # noqa: E402

PASSWORD = "probe-password-1"
SOFT, HARD = 256, 400
FLOOD = 600  # more sockets than the server may open at all


def low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD))


def test_a_flood_beyond_the_open_file_limit_is_refused_and_the_server_carries_on(tmp_path: Path):
    data = tmp_path / "data"
    run("migrate", "--data", str(data))
    run("mqtt-account", "create", "--data", str(data), "--username", "probe", "--publish", "probe/#", "--subscribe", "probe/#",
        "--password-stdin", stdin=PASSWORD + "\n")
    http, mqtt_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([str(binary()), "serve", "--data", str(data), "--http", f"127.0.0.1:{http}", "--mqtt", f"127.0.0.1:{mqtt_port}",
                                   "--log-level", "info"], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, preexec_fn=low_file_limit)
    flood: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if requests.get(f"http://127.0.0.1:{http}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "server not ready:\n" + log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        assert "open-file limit" in text and f"soft {HARD}" in text, text

        # More sockets than the server has descriptors for. They never send CONNECT: each one the
        # server keeps costs it a descriptor until the CONNECT timeout.
        for _ in range(FLOOD):
            s = socket.socket()
            s.settimeout(5)
            s.connect(("127.0.0.1", mqtt_port))
            flood.append(s)
        time.sleep(2)
        assert server.poll() is None, "the server died in the flood:\n" + log.read_text()
        closed = 0
        for s in flood:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        assert closed > 0, "every socket was kept: the server went past its open-file limit"
        # Closed either as beyond the open-file limit or, before that, as one too many of the
        # sockets waiting for their CONNECT (they may hold half the budget).
        text = log.read_text()
        assert "the open-file limit" in text or "waiting for their CONNECT" in text, text
        # HTTP and the database still have descriptors to work with.
        assert requests.get(f"http://127.0.0.1:{http}/readyz", timeout=5).status_code == 200

        for s in flood:
            s.close()
        flood.clear()
        # Once the flood is gone, clients are admitted again (the server may still be closing some).
        deadline = time.monotonic() + 20
        while True:
            client, inbox = paho(mqtt_port, "probe-after", "probe", PASSWORD)
            try:
                if expect(inbox, "connack", timeout=3)[1] == 0:
                    client.disconnect()
                    client.loop_stop()
                    break
            except pytest.fail.Exception:
                pass
            client.loop_stop()
            assert time.monotonic() < deadline, "no client admitted after the flood:\n" + log.read_text()
            time.sleep(0.5)
        assert server.poll() is None, log.read_text()
    finally:
        for s in flood:
            s.close()
        if server.poll() is None:
            server.terminate()
        code = server.wait(timeout=30)
    assert code == 0, log.read_text()
