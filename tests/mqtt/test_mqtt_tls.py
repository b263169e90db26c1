"""MQTT over TLS in `linli serve`: a certificate made with openssl, devices signing in with Alink
securemode 2 over TLS (and refused when the mode does not fit the connection), an integration
account over TLS, Alibaba's Link Kit SDK over TLS, and wrong certificate settings stopping start-up."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import expect, paho  # noqa: E402

PASSWORD = "frigate-password-1"
NOT_AUTHORISED = 5


def openssl_certificate(folder: Path, name: str = "mqtt") -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 and its key, made for this run only."""
    cert, key = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", "2", "-nodes",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("mqtt-tls")
    cert, key = openssl_certificate(work)
    data = work / "data"
    run("demo", "--data", str(data))
    product_key = run("product", "create", "--data", str(data), "--library", "environment_sensor").stdout.strip().splitlines()[-1]
    pk, dn, secret = run("device", "create", "--data", str(data), "--product-key", product_key, "--name", "env-tls").stdout.strip().splitlines()[-1].split()
    tsl = work / "tsl.json"
    tsl.write_text(run("product", "tsl", "--data", str(data), "--product-key", pk).stdout)
    run("mqtt-account", "create", "--data", str(data), "--username", "frigate", "--publish", "frigate/#", "--subscribe", "frigate/#",
        "--password-stdin", stdin=PASSWORD + "\n")
    port, tls_port = free_port(), free_port()
    node = Node(data, mqtt_port=port, args=["--mqtt-tls", f"127.0.0.1:{tls_port}", "--mqtt-tls-cert", str(cert), "--mqtt-tls-key", str(key)]).start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    yield {"port": port, "tls_port": tls_port, "ca": str(cert), "pk": pk, "dn": dn, "secret": secret, "tsl": str(tsl), "node": node}
    assert node.stop() == 0, node.log.read_text()


def device(site: dict, mode: int, port: int, ca: str | None):
    """The device signing in the Alink way, claiming `mode`, on `port` (TLS when `ca` is given)."""
    pk, dn = site["pk"], site["dn"]
    ts = int(time.time() * 1000)
    password = hmac.new(site["secret"].encode(), f"clientId{dn}deviceName{dn}productKey{pk}timestamp{ts}".encode(), hashlib.sha256).hexdigest()
    return paho(port, f"{dn}|securemode={mode},signmethod=hmacsha256,timestamp={ts}|", f"{dn}&{pk}", password, decode=json.loads, ca=ca)


def test_start_line_names_the_tls_address(site: dict):
    assert f"and TLS on 127.0.0.1:{site['tls_port']}" in site["node"].log.read_text()


def test_device_signs_in_over_tls_with_securemode_2_and_posts_properties(site: dict):
    c, inbox = device(site, 2, site["tls_port"], site["ca"])
    try:
        assert expect(inbox, "connack")[1] == 0
        topic = f"/sys/{site['pk']}/{site['dn']}/thing/event/property/post"
        c.publish(topic, json.dumps({"id": "7", "version": "1.0", "params": {"CurrentTemperature": 22.5}, "method": "thing.event.property.post"}), qos=1)
        reply = expect(inbox, "message")
        assert reply[1] == topic + "_reply" and reply[2]["id"] == "7" and reply[2]["code"] == 200
    finally:
        c.disconnect()
        c.loop_stop()


def test_securemode_must_fit_the_connection(site: dict):
    tls3, inbox = device(site, 3, site["tls_port"], site["ca"])
    assert expect(inbox, "connack")[1] == NOT_AUTHORISED
    tls3.loop_stop()
    plain2, inbox = device(site, 2, site["port"], None)
    assert expect(inbox, "connack")[1] == NOT_AUTHORISED
    plain2.loop_stop()
    assert "securemode does not fit the connection" in site["node"].log.read_text()


def test_integration_account_over_tls(site: dict):
    sub, sub_inbox = paho(site["tls_port"], "nvr-tls-viewer", "frigate", PASSWORD, ca=site["ca"])
    pub, pub_inbox = paho(site["tls_port"], "nvr-tls", "frigate", PASSWORD, ca=site["ca"])
    try:
        assert expect(sub_inbox, "connack")[1] == 0 and expect(pub_inbox, "connack")[1] == 0
        sub.subscribe("frigate/#", 1)
        assert expect(sub_inbox, "suback")[1] == [1]
        pub.publish("frigate/events", b"person at gate 2", qos=1)
        message = expect(sub_inbox, "message")
        assert message[1] == "frigate/events" and message[2] == b"person at gate 2"
    finally:
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()


def test_clients_that_do_not_trust_the_certificate_fail_and_the_broker_carries_on(site: dict):
    stranger = mqtt.Client(client_id="stranger", protocol=mqtt.MQTTv311)
    stranger.tls_set(tls_version=ssl.PROTOCOL_TLS_CLIENT)  # the system's roots, which do not include ours
    with pytest.raises(ssl.SSLError):
        stranger.connect("127.0.0.1", site["tls_port"], keepalive=30)
    with socket.create_connection(("127.0.0.1", site["tls_port"]), timeout=5) as raw:
        raw.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")  # plain MQTT CONNECT, not TLS
        raw.settimeout(5)
        try:
            while raw.recv(4096):
                pass
        except ConnectionResetError:
            pass
    c, inbox = paho(site["tls_port"], "after-strangers", "frigate", PASSWORD, ca=site["ca"])
    assert expect(inbox, "connack")[1] == 0
    c.disconnect()
    c.loop_stop()


def test_link_kit_sdk_signs_in_over_tls(site: dict):
    linkkit = pytest.importorskip("linkkit.linkkit")
    inbox: queue.Queue = queue.Queue()
    lk = linkkit.LinkKit(host_name="cn-shanghai", product_key=site["pk"], device_name=site["dn"], device_secret=site["secret"])
    # secure="TLS" makes the SDK sign in with securemode 2; cadata replaces Alibaba's root with ours.
    lk.config_mqtt(port=site["tls_port"], secure="TLS", cadata=Path(site["ca"]).read_text(), endpoint="127.0.0.1", keep_alive=60)
    lk.thing_setup(site["tsl"])
    lk.on_connect = lambda session_flag, rc, userdata: inbox.put(("connect", rc))
    lk.on_thing_prop_post = lambda request_id, code, data, message, userdata: inbox.put(("prop", code, message))
    lk.connect_async()
    try:
        assert expect(inbox, "connect", 15)[1] == 0
        assert lk.thing_post_property({"CurrentTemperature": 19.0})[0] == 0
        assert expect(inbox, "prop", 15)[1] == 200
    finally:
        lk.disconnect()
        lk.destruct()


def test_wrong_certificate_settings_stop_start_up(tmp_path: Path):
    cert, key = openssl_certificate(tmp_path)
    _, other_key = openssl_certificate(tmp_path, "other")
    serve = ("serve", "--data", str(tmp_path / "d"), "--http", f"127.0.0.1:{free_port()}", "--mqtt", f"127.0.0.1:{free_port()}")
    result = run(*serve, "--mqtt-tls-cert", str(tmp_path / "missing.pem"), "--mqtt-tls-key", str(key), check=False)
    assert result.returncode != 0 and "mqtt-tls-cert" in result.stderr and "cannot be read" in result.stderr
    result = run(*serve, "--mqtt-tls-cert", str(key), "--mqtt-tls-key", str(key), check=False)
    assert result.returncode != 0 and "mqtt-tls-cert" in result.stderr
    result = run(*serve, "--mqtt-tls-cert", str(cert), check=False)
    assert result.returncode != 0 and "mqtt-tls-cert" in result.stderr and "mqtt-tls-key" in result.stderr
    result = run(*serve, "--mqtt-tls-cert", str(cert), "--mqtt-tls-key", str(other_key), check=False)
    assert result.returncode != 0 and "mqtt-tls-key" in result.stderr
