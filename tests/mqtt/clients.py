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
