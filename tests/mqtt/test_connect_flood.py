"""Sockets that never finish their CONNECT cannot hold the broker: a CONNECT dripped a byte at a
time is closed 10 s after the socket opened, and 10,000 such sockets from one address take no
more than that address's share while a signed device, from another address, still connects.
The release binary, raw sockets for the attacker, paho-mqtt for the device."""

from __future__ import annotations

import os
import resource
import select
import socket
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import alink_device, create_device, create_product, expect, provision  # noqa: E402

# Another loopback address: Linux answers on all of 127.0.0.0/8, so the attacker's sockets come
# from an address of their own, as they would from another host.
ATTACKER = "127.0.0.2"
SOCKETS = 10_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("flood") / "data"
    provision(data)
    pk = create_product(data, "environment_sensor")
    triple = create_device(data, pk, "smoke-flood-1")
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    yield {"node": node, "port": port, "triple": triple}
    assert node.stop() == 0, node.log.read_text()


def connect_bytes() -> bytes:
    """A whole 3.1.1 CONNECT (client id of 30 bytes, clean session, keep-alive 60)."""
    client_id = b"d" * 30
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    return bytes([0x10, len(body)]) + body


def closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_a_connect_dripped_byte_by_byte_is_closed_ten_seconds_after_opening(site: dict):
    s = socket.create_connection(("127.0.0.1", site["port"]), timeout=5)
    start = time.monotonic()
    sent = 0
    try:
        for byte in connect_bytes():
            # One byte a second: each would have restarted a deadline that counted from the last byte.
            ready, _, _ = select.select([s], [], [], 1.0)
            if ready and closed(s):
                break
            s.setblocking(True)
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            sent += 1
        else:
            ready, _, _ = select.select([s], [], [], 15)
            assert ready and closed(s), "the whole CONNECT went out and the socket stayed open"
        took = time.monotonic() - start
    finally:
        s.close()
    assert sent < len(connect_bytes()), "the dripped CONNECT was completed before the close"
    assert 9.0 <= took <= 13.0, f"closed after {took:.1f} s, not at the 10 s connect deadline"


def test_ten_thousand_dripping_sockets_from_one_address_leave_room_for_a_signed_device(site: dict):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < SOCKETS + 500:
        pytest.skip(f"this process may open {hard} files, fewer than {SOCKETS} sockets need")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    node, port = site["node"], site["port"]
    attack: list[socket.socket] = []
    try:
        for i in range(SOCKETS):
            s = socket.socket()
            s.bind((ATTACKER, 0))
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", port))
                s.send(b"\x10")  # the first byte of a CONNECT, and then nothing
            except OSError:
                s.close()
                continue
            attack.append(s)
            if i % 2_500 == 2_499:
                # In the middle of the flood a signed device connects, from its own address.
                device, inbox = alink_device(port, site["triple"])
                assert expect(inbox, "connack", timeout=10)[1] == 0, node.log.read_text()[-3000:]
                device.disconnect()
                device.loop_stop()
        held = len(os.listdir(f"/proc/{node.process.pid}/fd"))
        assert held < 2_000, f"the server holds {held} descriptors for one address's sockets"
        assert requests.get(node.url + "/healthz", timeout=5).status_code == 200
        shut = sum(closed(s) for s in attack)
        assert shut >= SOCKETS - 1_000 - 100, f"only {shut} of {len(attack)} sockets were closed"
        metrics = requests.get(node.url + "/metrics", timeout=5).text
        line = next(l for l in metrics.splitlines() if l.startswith("linli_mqtt_connections_refused_total")
                    and 'reason="pending_per_address"' in l)
        assert float(line.split()[-1]) >= SOCKETS - 1_000 - 100, line
        assert "too many sockets waiting for their CONNECT" in node.log.read_text()
    finally:
        for s in attack:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    # And when they are gone, the same device again.
    device, inbox = alink_device(port, site["triple"])
    assert expect(inbox, "connack", timeout=10)[1] == 0
    device.disconnect()
    device.loop_stop()
