"""Shared by the MQTT tests: a paho client that reports what happens into a queue, and a wait for
the next report of a kind. paho-mqtt 1.x, the version Alibaba's Link Kit SDK needs."""

from __future__ import annotations

import queue
import ssl
import time
from typing import Callable

import paho.mqtt.client as mqtt
import pytest


def paho(port: int, client_id: str, username: str, password: str, clean: bool = True,
         decode: Callable[[bytes], object] = lambda payload: payload, ca: str | None = None) -> tuple[mqtt.Client, "queue.Queue"]:
    """A connected paho client (loop running) and the queue of its connack, messages, subacks and disconnects.
    With `ca` (a PEM file), it speaks TLS and trusts only that certificate."""
    inbox: queue.Queue = queue.Queue()
    c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
    c.username_pw_set(username, password)
    c.on_connect = lambda cl, ud, flags, rc: inbox.put(("connack", rc))
    c.on_message = lambda cl, ud, msg: inbox.put(("message", msg.topic, decode(msg.payload), msg.qos, msg.retain))
    c.on_disconnect = lambda cl, ud, rc: inbox.put(("disconnect", rc))
    c.on_subscribe = lambda cl, ud, mid, granted: inbox.put(("suback", list(granted)))
    if ca:
        c.tls_set(ca_certs=ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    return c, inbox


def expect(inbox: "queue.Queue", kind: str, timeout: float = 5):
    """The next report of `kind`, skipping others; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = inbox.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            break
        if item[0] == kind:
            return item
    pytest.fail(f"no {kind} within {timeout} s")


# Provisioning through the CLI and signing in as an Alink device, shared by the device tests.

OPS_PASSWORD = "operations-password-1"


def _run(*args: str, stdin: str | None = None):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
    from test_server_process import run
    return run(*args, stdin=stdin)


def provision(data) -> str:
    """A demo community in the data folder `data`, an operator `ops` (password OPS_PASSWORD) and
    that operator's API token, which this returns."""
    _run("demo", "--data", str(data))
    _run("user", "create", "--data", str(data), "--username", "ops", "--role", "platform_admin", "--password-stdin", stdin=OPS_PASSWORD + "\n")
    return _run("token", "create", "--data", str(data), "--username", "ops", "--name", "t").stdout.strip().splitlines()[-1]


def create_product(data, library: str, *flags: str) -> str:
    """A product from the built-in library; its ProductKey."""
    return _run("product", "create", "--data", str(data), "--library", library, *flags).stdout.strip().splitlines()[-1]


def create_device(data, product_key: str, name: str) -> tuple[str, str, str]:
    """A registered device's triple: ProductKey, DeviceName, DeviceSecret."""
    pk, dn, secret = _run("device", "create", "--data", str(data), "--product-key", product_key, "--name", name).stdout.strip().splitlines()[-1].split()
    return pk, dn, secret


def alink_device(port: int, triple: tuple[str, str, str], client_id: str | None = None, clean: bool = True):
    """A paho client signed in as a device (the Alink CONNECT, HMAC-SHA256), its messages decoded
    as JSON where they are JSON."""
    import hashlib
    import hmac
    import json
    pk, dn, secret = triple
    ts = int(time.time() * 1000)
    cid = client_id or dn
    password = hmac.new(secret.encode(), f"clientId{cid}deviceName{dn}productKey{pk}timestamp{ts}".encode(), hashlib.sha256).hexdigest()

    def decode(payload: bytes):
        try:
            return json.loads(payload)
        except ValueError:
            return payload

    return paho(port, f"{cid}|securemode=3,signmethod=hmacsha256,timestamp={ts}|", f"{dn}&{pk}", password, clean=clean, decode=decode)


def link_kit(port: int, triple: tuple[str, str, str], tsl: str, inbox: "queue.Queue"):
    """Alibaba's Link Kit SDK as the device `triple`, pointed at Linli on 127.0.0.1 without TLS, set
    up with the product's thing model; its connect is reported to `inbox` as ("connect", rc).
    Set the other callbacks, then `connect_async()`."""
    from linkkit import linkkit
    pk, dn, secret = triple
    lk = linkkit.LinkKit(host_name="cn-shanghai", product_key=pk, device_name=dn, device_secret=secret)
    lk.config_mqtt(port=port, secure="", endpoint="127.0.0.1", keep_alive=60)
    lk.thing_setup(tsl)
    lk.on_connect = lambda session_flag, rc, userdata: inbox.put(("connect", rc))
    return lk
