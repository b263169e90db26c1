"""Linli's embedded MQTT broker with real clients: paho-mqtt (PyPI) and mosquitto_pub/sub (Debian),
authenticated by an integration account created with `linli mqtt-account create`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import expect, paho  # noqa: E402

PASSWORD = "frigate-password-1"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("mqtt") / "data"
    run("migrate", "--data", str(data))
    run("mqtt-account", "create", "--data", str(data), "--username", "frigate", "--description", "NVR events",
        "--publish", "frigate/#", "--subscribe", "frigate/#", "--password-stdin", stdin=PASSWORD + "\n")
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    yield port
    assert node.stop() == 0, node.log.read_text()


def client(port: int, client_id: str, password: str = PASSWORD, clean: bool = True):
    return paho(port, client_id, "frigate", password, clean)


def test_paho_publishes_and_subscribes_at_qos_1_and_2(broker: int):
    sub, sub_inbox = client(broker, "nvr-viewer")
    assert expect(sub_inbox, "connack")[1] == 0
    sub.subscribe([("frigate/#", 2)])
    assert expect(sub_inbox, "suback")[1] == [2]
    pub, pub_inbox = client(broker, "nvr")
    assert expect(pub_inbox, "connack")[1] == 0
    for qos in (1, 2):
        info = pub.publish("frigate/events", f"person at gate, qos {qos}".encode(), qos=qos)
        info.wait_for_publish(timeout=5)
        assert info.is_published()
        message = expect(sub_inbox, "message")
        assert message[1] == "frigate/events" and message[2] == f"person at gate, qos {qos}".encode() and message[3] == qos
    pub.publish("frigate/available", b"online", qos=1, retain=True).wait_for_publish(timeout=5)
    late, late_inbox = client(broker, "late-viewer")
    expect(late_inbox, "connack")
    late.subscribe("frigate/available", 1)
    retained = expect(late_inbox, "message")
    assert retained[2] == b"online" and bool(retained[4])
    for c in (sub, pub, late):
        c.disconnect()
        c.loop_stop()


def test_wrong_password_and_foreign_topics_are_refused(broker: int):
    bad, bad_inbox = client(broker, "intruder", password="wrong-password")
    assert expect(bad_inbox, "connack")[1] != 0
    bad.loop_stop()
    ok, inbox = client(broker, "curious")
    assert expect(inbox, "connack")[1] == 0
    ok.subscribe("zigbee2mqtt/#", 1)
    assert expect(inbox, "suback")[1] == [128]
    ok.publish("zigbee2mqtt/bridge", b"x", qos=1)
    expect(inbox, "disconnect")
    ok.loop_stop()


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto-clients not installed")
def test_mosquitto_clients_interoperate(broker: int):
    common = ["-h", "127.0.0.1", "-p", str(broker), "-u", "frigate", "-P", PASSWORD, "-V", "mqttv311"]
    sub = subprocess.Popen(["mosquitto_sub", *common, "-t", "frigate/mosquitto", "-q", "1", "-C", "1", "-W", "10"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    subprocess.run(["mosquitto_pub", *common, "-t", "frigate/mosquitto", "-m", "hello from mosquitto", "-q", "1"], check=True, timeout=10)
    out, err = sub.communicate(timeout=15)
    assert sub.returncode == 0, err
    assert out.strip() == "hello from mosquitto"


def test_account_names_that_could_never_sign_in_are_refused(tmp_path: Path):
    data = tmp_path / "data"
    run("migrate", "--data", str(data))
    for name, why in [("a\x01b", "control"), ("two words", "spaces"), ("light2&a1a6qWyXeei", "'&'")]:
        result = run("mqtt-account", "create", "--data", str(data), "--username", name, "--publish", "x/#", "--password-stdin",
                     stdin="a-password-123\n", check=False)
        assert result.returncode != 0 and why in result.stderr, (name, result.stderr)
    assert run("mqtt-account", "create", "--data", str(data), "--username", "zigbee2mqtt", "--publish", "zigbee2mqtt/#",
               "--password-stdin", stdin="a-password-123\n").returncode == 0


def test_the_broker_limits_are_settings(tmp_path: Path):
    """A camera snapshot of 300 KB is over the default 256 KiB; with `mqtt-max-packet-kib = 512` it
    goes through, and a packet over the new limit still closes its connection. The connection
    limit and the publish rate are settings too."""
    data = tmp_path / "data"
    run("migrate", "--data", str(data))
    run("mqtt-account", "create", "--data", str(data), "--username", "frigate", "--publish", "frigate/#", "--subscribe", "frigate/#",
        "--password-stdin", stdin=PASSWORD + "\n")
    config = tmp_path / "linli.conf"
    config.write_text("mqtt-max-packet-kib = 512\nmqtt-max-connections = 3\nmqtt-publish-rate = 20\n")
    port = free_port()
    node = Node(data, mqtt_port=port, args=["--config", str(config)]).start()
    try:
        viewer, viewer_inbox = client(port, "viewer")
        assert expect(viewer_inbox, "connack")[1] == 0
        viewer.subscribe("frigate/#", 1)
        expect(viewer_inbox, "suback")
        camera, camera_inbox = client(port, "camera")
        assert expect(camera_inbox, "connack")[1] == 0
        snapshot = bytes(range(256)) * 1200  # 300 KB
        info = camera.publish("frigate/gate/person/snapshot", snapshot, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()
        assert expect(viewer_inbox, "message", timeout=10)[2] == snapshot
        # Three clients at most: the fourth is told the server is unavailable (CONNACK 3).
        chatty, chatty_inbox = client(port, "chatty")
        assert expect(chatty_inbox, "connack")[1] == 0
        extra, extra_inbox = client(port, "extra")
        assert expect(extra_inbox, "connack")[1] == 3
        extra.loop_stop()
        # Twenty messages a second: a client sending a hundred at once is disconnected.
        for i in range(100):
            chatty.publish("frigate/chatter", str(i).encode(), qos=0)
        assert expect(chatty_inbox, "disconnect", timeout=10)[1] != 0, "over the publish rate closes the connection"
        chatty.loop_stop()
        camera.publish("frigate/gate/person/snapshot", bytes(600 * 1024), qos=1)
        assert expect(camera_inbox, "disconnect", timeout=10)[1] != 0, "over the limit closes the connection"
        for c in (viewer, camera):
            c.loop_stop()
    finally:
        assert node.stop() == 0
