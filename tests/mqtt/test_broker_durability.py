"""What the broker acknowledged survives `kill -9` and a clean stop: persistent sessions with their
queued QoS 1 and 2 messages, QoS 2 packet ids between PUBREC and PUBREL, retained messages and the
wills of clients a crash cut off. Real clients (paho-mqtt, and raw sockets where a test must stop
between two packets), the release binary, a real restart."""

from __future__ import annotations

import queue
import signal
import socket
import struct
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import expect  # noqa: E402

PASSWORD = "frigate-password-1"


class Broker:
    """`linli serve` on one data folder and one MQTT port, stopped and started again at will."""

    def __init__(self, data: Path, env: dict[str, str] | None = None):
        self.data = data
        self.env = env
        self.port = free_port()
        self.node: Node | None = None

    def start(self) -> "Broker":
        self.node = Node(self.data, mqtt_port=self.port, env=self.env).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        pytest.fail("the broker did not listen")

    def stop(self, sig: int) -> int:
        assert self.node is not None
        return self.node.stop(sig)

    def restart(self, sig: int) -> None:
        code = self.stop(sig)
        assert code == (-9 if sig == signal.SIGKILL else 0), self.node.log.read_text()
        self.start()


@pytest.fixture
def broker(tmp_path: Path, request: pytest.FixtureRequest):
    data = tmp_path / "data"
    run("migrate", "--data", str(data))
    run("mqtt-account", "create", "--data", str(data), "--username", "frigate", "--description", "NVR events",
        "--publish", "frigate/#", "--publish", "zigbee2mqtt/#", "--subscribe", "frigate/#",
        "--subscribe", "zigbee2mqtt/#", "--password-stdin", stdin=PASSWORD + "\n")
    b = Broker(data, env=getattr(request, "param", None)).start()
    yield b
    if b.node and b.node.process and b.node.process.poll() is None:
        assert b.stop(signal.SIGTERM) == 0, b.node.log.read_text()


def client(port: int, client_id: str, clean: bool = True, will: tuple[str, bytes, int, bool] | None = None):
    """A connected paho 3.1.1 client and its inbox; connack carries (return code, session present)."""
    inbox: queue.Queue = queue.Queue()
    c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
    c.username_pw_set("frigate", PASSWORD)
    if will:
        c.will_set(*will)
    c.on_connect = lambda cl, ud, flags, rc: inbox.put(("connack", rc, flags.get("session present")))
    c.on_message = lambda cl, ud, msg: inbox.put(("message", msg.topic, msg.payload, msg.qos, msg.retain))
    c.on_subscribe = lambda cl, ud, mid, granted: inbox.put(("suback", list(granted)))
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    assert expect(inbox, "connack")[1] == 0
    return c, inbox


def leave(c: mqtt.Client) -> None:
    c.disconnect()
    c.loop_stop()


def messages(inbox: queue.Queue, count: int, timeout: float = 15) -> list[tuple]:
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            item = inbox.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            break
        if item[0] == "message":
            got.append(item)
    return got


def away_subscriber(port: int, client_id: str, filter: str, qos: int) -> None:
    """A persistent session subscribed to `filter`, whose client then goes away."""
    sub, inbox = client(port, client_id, clean=False)
    sub.subscribe(filter, qos)
    assert expect(inbox, "suback")[1] == [qos]
    leave(sub)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_100_acknowledged_messages_reach_a_persistent_subscriber_after_a_restart(broker: Broker, sig: int):
    away_subscriber(broker.port, "nvr-consumer", "frigate/#", 1)
    pub, _ = client(broker.port, "nvr")
    for i in range(1, 101):
        info = pub.publish("frigate/events", f"event {i}".encode(), qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), f"event {i} not acknowledged"
    info = pub.publish("frigate/available", b"online", qos=1, retain=True)
    info.wait_for_publish(timeout=5)
    assert info.is_published()
    pub.loop_stop()

    broker.restart(sig)

    back, inbox = client(broker.port, "nvr-consumer", clean=False)
    got = messages(inbox, 101)
    payloads = [m[2].decode() for m in got]
    assert payloads == [f"event {i}" for i in range(1, 101)] + ["online"], "each of them once, in order"
    leave(back)
    # A newcomer gets the retained message, flagged retained.
    newcomer, news = client(broker.port, "dashboard")
    newcomer.subscribe("frigate/available", 1)
    retained = expect(news, "message")
    assert retained[2] == b"online" and retained[4] == 1
    leave(newcomer)


def test_a_retained_message_survives_kill_9(broker: Broker):
    pub, _ = client(broker.port, "zigbee-bridge")
    info = pub.publish("zigbee2mqtt/bridge/state", b"online", qos=1, retain=True)
    info.wait_for_publish(timeout=5)
    leave(pub)
    broker.restart(signal.SIGKILL)
    sub, inbox = client(broker.port, "home-assistant")
    sub.subscribe("zigbee2mqtt/#", 1)
    message = expect(inbox, "message")
    assert message[1:3] == ("zigbee2mqtt/bridge/state", b"online") and message[4] == 1
    leave(sub)


def test_the_will_of_a_client_cut_off_by_a_crash_is_published_when_the_broker_is_back(broker: Broker):
    # zigbee2mqtt's way: "online" retained, the will "offline" retained.
    bridge, _ = client(broker.port, "zigbee-bridge", will=("zigbee2mqtt/bridge/state", b"offline", 1, True))
    info = bridge.publish("zigbee2mqtt/bridge/state", b"online", qos=1, retain=True)
    info.wait_for_publish(timeout=5)
    broker.restart(signal.SIGKILL)
    bridge.loop_stop()
    sub, inbox = client(broker.port, "home-assistant")
    sub.subscribe("zigbee2mqtt/bridge/state", 1)
    message = expect(inbox, "message")
    assert message[2] == b"offline", "the crash cut the bridge off without DISCONNECT"
    leave(sub)


# Raw MQTT 3.1.1 packets, for stopping the broker between a PUBREC and its PUBREL.

def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([first]) + encoded + body


class Raw:
    def __init__(self, port: int, client_id: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        flags = 0x80 | 0x40  # username, password; clean session 0
        body = _string("MQTT") + bytes([4, flags]) + struct.pack(">H", 30) + _string(client_id) + _string("frigate") + _string(PASSWORD)
        self.sock.sendall(_packet(0x10, body))
        kind, connack = self.read()
        assert kind == 0x20 and connack[1] == 0, "CONNACK accepted"

    def read(self) -> tuple[int, bytes]:
        first = self._exactly(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._exactly(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        self.last = (first, self._exactly(length))
        return self.last

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def publish_qos2(self, topic: str, payload: bytes, packet_id: int, dup: bool = False) -> None:
        self.sock.sendall(_packet(0x34 | (0x08 if dup else 0), _string(topic) + struct.pack(">H", packet_id) + payload))

    def send(self, kind: int, packet_id: int) -> None:
        self.sock.sendall(_packet(kind, struct.pack(">H", packet_id)))


def test_qos2_is_delivered_exactly_once_across_a_kill_9_between_pubrec_and_pubrel(broker: Broker):
    away_subscriber(broker.port, "alarm-panel", "frigate/alarms", 2)
    gateway = Raw(broker.port, "smoke-gateway")
    gateway.publish_qos2("frigate/alarms", b"smoke on 4", 7)
    assert gateway.read() == (0x50, struct.pack(">H", 7)), "PUBREC"
    broker.restart(signal.SIGKILL)
    gateway = Raw(broker.port, "smoke-gateway")
    assert gateway.last == (0x20, b"\x01\x00"), "session present"
    gateway.publish_qos2("frigate/alarms", b"smoke on 4", 7, dup=True)
    assert gateway.read() == (0x50, struct.pack(">H", 7))
    gateway.send(0x62, 7)  # PUBREL
    assert gateway.read() == (0x70, struct.pack(">H", 7)), "PUBCOMP"
    panel, inbox = client(broker.port, "alarm-panel", clean=False)
    got = messages(inbox, 2, timeout=3)
    assert [(m[2], m[3]) for m in got] == [(b"smoke on 4", 2)], "once, not twice"
    leave(panel)


@pytest.mark.parametrize("broker", [{"LINLI_MQTT_QUEUE": "10"}], indirect=True)
def test_a_full_queue_keeps_the_oldest_and_counts_what_it_dropped(broker: Broker):
    away_subscriber(broker.port, "meter-reader", "frigate/meters", 1)
    pub, _ = client(broker.port, "meters")
    for i in range(1, 16):
        pub.publish("frigate/meters", f"reading {i}".encode(), qos=1).wait_for_publish(timeout=5)
    leave(pub)
    metrics = requests.get(broker.node.url + "/metrics", timeout=5).text
    assert 'linli_mqtt_messages_dropped_total{reason="queue_full"} 5' in metrics, metrics
    assert "linli_mqtt_persistent_sessions 1" in metrics
    shown = run("mqtt-account", "sessions", "--data", str(broker.data), "--username", "frigate").stdout
    row = next(line for line in shown.splitlines() if line.startswith("meter-reader"))
    assert "away since" in row and row.split()[-3:] == ["10", "5", "1"], shown  # kept, dropped, subscriptions
    broker.restart(signal.SIGKILL)
    back, inbox = client(broker.port, "meter-reader", clean=False)
    assert [m[2].decode() for m in messages(inbox, 15, timeout=3)] == [f"reading {i}" for i in range(1, 11)]
    leave(back)


@pytest.mark.parametrize("broker", [{"LINLI_MQTT_SESSION_EXPIRY": "2s"}], indirect=True)
def test_a_session_expires_when_its_client_stays_away_also_across_a_restart(broker: Broker):
    away_subscriber(broker.port, "visitor-kiosk", "frigate/kiosk", 1)
    broker.restart(signal.SIGKILL)
    time.sleep(2.5)
    kiosk = mqtt.Client(client_id="visitor-kiosk", clean_session=False, protocol=mqtt.MQTTv311)
    kiosk.username_pw_set("frigate", PASSWORD)
    present = queue.Queue()
    kiosk.on_connect = lambda cl, ud, flags, rc: present.put(flags.get("session present"))
    kiosk.connect("127.0.0.1", broker.port, keepalive=30)
    kiosk.loop_start()
    assert present.get(timeout=5) == 0, "expired: no session any more"
    leave(kiosk)
