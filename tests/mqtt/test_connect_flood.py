"""Sockets that never finish their CONNECT cannot hold the broker: a CONNECT dripped a byte at a
time is closed 10 s after the socket opened, and 10,000 such sockets from one address take no
more than that address's share while a signed device, from another address, still connects.
The release binary, raw sockets for the attacker, paho-mqtt for the device."""

from __future__ import annotations

import os
import resource
import select
import socket
import subprocess
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


# The attacker runs in a process of its own: its 10,000 descriptors would be out of reach of the
# device client's select() (paho-mqtt 1.x), and a host of its own is what it stands for anyway.
ATTACK = r"""
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
address, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = []
for i in range(count):
    s = socket.socket()
    s.bind((address, 0))
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
        s.send(b"\x10")  # the first byte of a CONNECT, and then nothing
        held.append(s)
    except OSError:
        s.close()
    if i % 2500 == 2499:
        print("opened", i + 1, flush=True)
import time
time.sleep(3)  # the closes of evicted sockets reach this side a moment after they are decided
closed = 0
for s in held:
    s.setblocking(False)
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print("closed", closed, "of", len(held), flush=True)
sys.stdin.read()
"""


def test_ten_thousand_dripping_sockets_from_one_address_leave_room_for_a_signed_device(site: dict):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < SOCKETS + 500:
        pytest.skip(f"a process may open {hard} files, fewer than {SOCKETS} sockets need")
    node, port = site["node"], site["port"]
    attacker = subprocess.Popen([sys.executable, "-c", ATTACK, ATTACKER, str(port), str(SOCKETS)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for line in attacker.stdout:
            if line.startswith("opened"):
                # In the middle of the flood a signed device connects, from its own address.
                device, inbox = alink_device(port, site["triple"])
                assert expect(inbox, "connack", timeout=10)[1] == 0, node.log.read_text()[-3000:]
                device.disconnect()
                device.loop_stop()
                continue
            assert line.startswith("closed"), line
            shut, held = int(line.split()[1]), int(line.split()[3])
            break
        else:
            pytest.fail("the attacker stopped early")
        assert held == SOCKETS, f"only {held} of {SOCKETS} sockets were opened"
        descriptors = len(os.listdir(f"/proc/{node.process.pid}/fd"))
        assert descriptors < 2_000, f"the server holds {descriptors} descriptors for one address's sockets"
        assert shut >= SOCKETS - 1_000 - 500, f"only {shut} of {held} sockets were closed"
        assert requests.get(node.url + "/healthz", timeout=5).status_code == 200
        metrics = requests.get(node.url + "/metrics", timeout=5).text
        line = next(l for l in metrics.splitlines() if l.startswith("linli_mqtt_connections_refused_total")
                    and 'reason="pending_per_address"' in l)
        assert float(line.split()[-1]) >= SOCKETS - 1_000 - 500, line
        assert "too many sockets waiting for their CONNECT" in node.log.read_text()
    finally:
        attacker.stdin.close()
        attacker.wait(timeout=30)
    # And when they are gone, the same device again.
    device, inbox = alink_device(port, site["triple"])
    assert expect(inbox, "connack", timeout=10)[1] == 0
    device.disconnect()
    device.loop_stop()
