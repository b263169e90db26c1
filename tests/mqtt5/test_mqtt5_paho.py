"""MQTT 5.0 on Linli's embedded broker, end to end with a real client: paho-mqtt 2.x, against a
real `linli serve` (the binary in LINLI_BIN) with integration accounts made by the CLI.

paho 2.x cannot share an environment with Alibaba's Link Kit (which needs paho < 2), so these
tests run from their own virtualenv (`.ci/run` makes it):

    LINLI_BIN=.build/debug/linli "${TMPDIR:-/tmp}/linli-paho5/bin/python" -m pytest -q tests/mqtt5

One broker serves the whole module; every test has its own client ids and topics. Where a test
must show that something did *not* arrive, it waits for a later message that the broker sends
after it on the same session (a barrier: deliveries to one session keep their order), rather
than sleeping, except where time itself is what is tested (expiry, will delay)."""

from __future__ import annotations

import itertools
import queue
import socket
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import CallbackAPIVersion, MQTTv5, MQTTv311
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402

PASSWORD = "lab-password-1"
FRIGATE_PASSWORD = "frigate-password-1"
MAX_PACKET_KIB = 128  # set in the broker's configuration below; CONNACK must say so
WAIT = 15  # seconds for anything that should arrive: generous, for a loaded 2-core machine


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("mqtt5")
    data = root / "data"
    run("migrate", "--data", str(data))
    run("mqtt-account", "create", "--data", str(data), "--username", "lab", "--description", "MQTT 5 tests",
        "--publish", "lab/#", "--publish", "jobs/#", "--subscribe", "lab/#", "--subscribe", "jobs/#",
        "--password-stdin", stdin=PASSWORD + "\n")
    run("mqtt-account", "create", "--data", str(data), "--username", "frigate", "--description", "NVR events",
        "--publish", "frigate/#", "--subscribe", "frigate/#", "--password-stdin", stdin=FRIGATE_PASSWORD + "\n")
    config = root / "linli.conf"
    config.write_text(f"mqtt-max-packet-kib = {MAX_PACKET_KIB}\n")
    port = free_port()
    node = Node(data, mqtt_port=port, args=["--config", str(config)]).start()
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail("the broker did not listen:\n" + node.log.read_text())
            time.sleep(0.1)
    yield port
    assert node.stop() == 0, node.log.read_text()


def props(packet_type: int, **values) -> Properties:
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def prop(properties: Properties | None, name: str):
    """A property of a received packet, or None when absent."""
    return getattr(properties, name, None) if properties is not None else None


class Peer:
    """A paho 2.x client on its own network thread, its callbacks reported on queues.

    It never reconnects by itself (a test that sees a disconnection must see it once)."""

    def __init__(self, port: int, client_id: str, *, v5: bool = True, username: str = "lab",
                 password: str = PASSWORD, manual_ack: bool = False):
        self.port = port
        self.v5 = v5
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=MQTTv5 if v5 else MQTTv311, reconnect_on_failure=False,
                                  manual_ack=manual_ack)
        self.client.username_pw_set(username, password)
        self.connacks: queue.Queue = queue.Queue()
        self.inbox: queue.Queue = queue.Queue()  # (monotonic time of arrival, MQTTMessage)
        self.subacks: queue.Queue = queue.Queue()
        self.disconnects: queue.Queue = queue.Queue()
        self._acks: dict[int, object] = {}
        self._acked = threading.Condition()
        self.client.on_connect = lambda c, u, flags, rc, p: self.connacks.put((rc, flags.session_present, p))
        self.client.on_message = lambda c, u, msg: self.inbox.put((time.monotonic(), msg))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put((mid, codes))
        self.client.on_disconnect = lambda c, u, flags, rc, p: self.disconnects.put((rc, p))
        self.client.on_publish = self._published

    def _published(self, client, userdata, mid, reason_code, properties):
        with self._acked:
            self._acks[mid] = reason_code
            self._acked.notify_all()

    def connect(self, clean_start: bool = True, will: tuple | None = None, **connect_properties):
        """CONNECT; returns the CONNACK as (reason code, session present, properties)."""
        if will:
            topic, payload, qos, will_props = will
            self.client.will_set(topic, payload, qos, properties=will_props)
        kwargs = {}
        if self.v5:
            kwargs["clean_start"] = clean_start
            if connect_properties:
                kwargs["properties"] = props(PacketTypes.CONNECT, **connect_properties)
        self.client.connect("127.0.0.1", self.port, keepalive=30, **kwargs)
        self.client.loop_start()
        try:
            self.connack = self.connacks.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"no CONNACK for {self.client._client_id!r} within {WAIT} s")
        return self.connack

    def subscribe(self, topic: str, qos: int = 1, *, no_local: bool = False, retain_as_published: bool = False,
                  retain_handling: int = 0, identifier: int | None = None) -> list:
        """SUBSCRIBE one filter and wait for its SUBACK; returns the reason codes."""
        if self.v5:
            options = SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=retain_as_published,
                                       retainHandling=retain_handling)
            extra = {"properties": props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=identifier)} if identifier else {}
            result, mid = self.client.subscribe(topic, options=options, **extra)
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        try:
            got, codes = self.subacks.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"no SUBACK for {topic} within {WAIT} s")
        assert got == mid
        return codes

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, wait: bool = True, **properties):
        """PUBLISH; with `wait`, until paho has its acknowledgement (QoS 1: PUBACK) and returns its
        reason code (paho's on_publish gets it in callback API version 2)."""
        extra = {"properties": props(PacketTypes.PUBLISH, **properties)} if properties else {}
        info = self.client.publish(topic, payload, qos=qos, retain=retain, **extra)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        if not wait:
            return info
        deadline = time.monotonic() + WAIT
        with self._acked:
            while info.mid not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no acknowledgement of the publish to {topic} within {WAIT} s")
                self._acked.wait(left)
            return self._acks.pop(info.mid)

    def message(self, timeout: float = WAIT):
        """The next message, or fails the test."""
        try:
            return self.inbox.get(timeout=timeout)[1]
        except queue.Empty:
            pytest.fail(f"no message for {self.client._client_id!r} within {timeout} s")

    def messages(self, count: int, timeout: float = WAIT) -> list:
        return [self.message(max(0.05, timeout)) for _ in range(count)]

    def nothing(self, within: float) -> None:
        """Asserts that no message arrives within `within` seconds."""
        try:
            _, msg = self.inbox.get(timeout=within)
        except queue.Empty:
            return
        pytest.fail(f"unexpected message for {self.client._client_id!r}: {msg.topic} {msg.payload!r}")

    def disconnected(self, timeout: float = WAIT):
        """The DISCONNECT reason paho reported, and its properties."""
        try:
            return self.disconnects.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.client._client_id!r} was not disconnected within {timeout} s")

    def leave(self) -> None:
        """DISCONNECT (normal, no will) and stop the network thread."""
        if self.client.is_connected():
            self.client.disconnect()
            try:
                self.disconnects.get(timeout=WAIT)
            except queue.Empty:
                pass
        self.client.loop_stop()

    def drop(self) -> float:
        """Cuts the TCP connection without DISCONNECT, as a crash or a lost network does; returns
        when. shutdown(2) from this thread is safe while paho's thread is in select(): the broker
        reads end-of-file, paho's thread sees the dead socket and (not reconnecting) stops."""
        sock = self.client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        at = time.monotonic()
        self.disconnected()
        self.client.loop_stop()
        return at


_ids = itertools.count(1)


def connected(port: int, name: str, *, clean_start: bool = True, will: tuple | None = None, v5: bool = True,
              username: str = "lab", password: str = PASSWORD, manual_ack: bool = False, **connect_properties) -> Peer:
    """A client signed in (CONNACK success), with a client id of its own unless `name` is exact."""
    peer = Peer(port, name, v5=v5, username=username, password=password, manual_ack=manual_ack)
    reason, _, _ = peer.connect(clean_start=clean_start, will=will, **connect_properties)
    assert not reason.is_failure, f"CONNACK {reason}"
    return peer


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}-{time.monotonic_ns() % 1_000_000}"


# 1. CONNACK


def test_connack_tells_the_limits_and_assigns_a_client_id(broker: int):
    peer = connected(broker, unique("lab-connack"))
    reason, present, p = peer.connack
    assert reason == 0 and present is False
    assert prop(p, "ReceiveMaximum") == 64, p  # the broker's in-flight window
    assert prop(p, "MaximumPacketSize") == MAX_PACKET_KIB * 1024, p  # mqtt-max-packet-kib from the configuration
    assert prop(p, "TopicAliasMaximum") == 64, p
    assert prop(p, "AssignedClientIdentifier") is None, "only for an empty client id"
    peer.leave()

    # MQTT 5 allows an empty client id whatever Clean Start (MQTT-3.1.3-6/7): the server assigns one
    # and says which (MQTT-3.2.2-16).
    anonymous = Peer(broker, "")
    reason, present, p = anonymous.connect(clean_start=False, SessionExpiryInterval=60)
    assert reason == 0 and present is False
    assigned = prop(p, "AssignedClientIdentifier")
    assert assigned, p
    anonymous.subscribe("lab/assigned/#")
    anonymous.leave()
    # The assigned id names a real session: coming back with it finds the session.
    back = Peer(broker, assigned)
    reason, present, p = back.connect(clean_start=False, SessionExpiryInterval=60)
    assert reason == 0 and present is True, "the session of the assigned client id"
    assert prop(p, "AssignedClientIdentifier") is None
    back.leave()
    # Two anonymous clients get different ids.
    other = Peer(broker, "")
    other.connect(clean_start=True)
    assert prop(other.connack[2], "AssignedClientIdentifier") not in (None, assigned)
    other.leave()


# 2. and 3. Properties pass through


def test_publish_properties_reach_a_v5_subscriber_and_a_v311_one_gets_the_bare_message(broker: int):
    v5 = connected(broker, unique("lab-props-v5"))
    v5.subscribe("lab/props/#")
    v3 = connected(broker, unique("lab-props-v311"), v5=False)
    v3.subscribe("lab/props/#")
    publisher = connected(broker, unique("lab-props-pub"))
    user = [("zone", "B2"), ("camera", "gate"), ("zone", "B3"), ("note", "门口")]
    body = '{"person": true}'.encode()
    assert publisher.publish("lab/props/gate", body, qos=1, UserProperty=user, ContentType="application/json",
                             PayloadFormatIndicator=1) == 0
    assert publisher.publish("lab/props/gate", b"\x00\x01binary", qos=0, ContentType="application/octet-stream",
                             PayloadFormatIndicator=0, wait=False).rc == 0

    first, second = v5.messages(2)
    assert (first.topic, first.payload, first.qos) == ("lab/props/gate", body, 1)
    assert prop(first.properties, "UserProperty") == user, "user properties in their order, duplicates kept"
    assert prop(first.properties, "ContentType") == "application/json"
    assert prop(first.properties, "PayloadFormatIndicator") == 1
    assert prop(first.properties, "TopicAlias") is None
    assert (second.payload, second.qos) == (b"\x00\x01binary", 0)
    assert prop(second.properties, "ContentType") == "application/octet-stream"
    assert prop(second.properties, "PayloadFormatIndicator") in (None, 0)  # 0 is the default: may be left out
    assert prop(second.properties, "UserProperty") is None

    # 3.1.1 has no properties on the wire: a broker that wrote them would corrupt the payload.
    first, second = v3.messages(2)
    assert (first.topic, first.payload, first.qos) == ("lab/props/gate", body, 1)
    assert (second.topic, second.payload, second.qos) == ("lab/props/gate", b"\x00\x01binary", 0)
    assert first.properties is None and second.properties is None
    for peer in (v5, v3, publisher):
        peer.leave()


def test_request_response_with_response_topic_and_correlation_data(broker: int):
    responder = connected(broker, unique("lab-responder"))
    responder.subscribe("lab/rr/request/+")
    requester_id = unique("lab-requester")
    requester = connected(broker, requester_id)
    reply_to = f"lab/rr/reply/{requester_id}"
    requester.subscribe(reply_to)
    correlations = [b"\x01req-1", b"\xffreq-2\x00"]
    for i, correlation in enumerate(correlations):
        assert requester.publish("lab/rr/request/door", f"open {i}".encode(), qos=1, ResponseTopic=reply_to,
                                 CorrelationData=correlation) == 0

    for i, correlation in enumerate(correlations):
        request = responder.message()
        assert request.payload == f"open {i}".encode()
        assert prop(request.properties, "ResponseTopic") == reply_to
        assert prop(request.properties, "CorrelationData") == correlation
        assert responder.publish(request.properties.ResponseTopic, b"opened: " + request.payload, qos=1,
                                 CorrelationData=request.properties.CorrelationData) == 0

    replies = requester.messages(2)
    assert [(r.topic, r.payload, prop(r.properties, "CorrelationData")) for r in replies] == [
        (reply_to, f"opened: open {i}".encode(), correlation) for i, correlation in enumerate(correlations)]
    assert all(prop(r.properties, "ResponseTopic") is None for r in replies)
    responder.leave()
    requester.leave()


# 4. Subscription options


def test_no_local_keeps_a_clients_own_messages_from_it(broker: int):
    me = connected(broker, unique("lab-nolocal-me"))
    assert me.subscribe("lab/nolocal/#", no_local=True) == [1]
    watcher = connected(broker, unique("lab-nolocal-watcher"))
    watcher.subscribe("lab/nolocal/#")
    other = connected(broker, unique("lab-nolocal-other"))

    assert me.publish("lab/nolocal/t", b"mine") == 0
    # Once the watcher has it, its routing is over: had it gone to `me` too, it would reach `me`
    # before anything routed later.
    assert watcher.message().payload == b"mine"
    assert other.publish("lab/nolocal/t", b"theirs") == 0
    assert watcher.message().payload == b"theirs"
    got = me.message()
    assert got.payload == b"theirs", f"No Local: the client got its own message {got.payload!r}"
    for peer in (me, watcher, other):
        peer.leave()


def test_retain_as_published_keeps_the_retain_flag_on_live_messages(broker: int):
    kept = connected(broker, unique("lab-rap-kept"))
    kept.subscribe("lab/rap/#", retain_as_published=True)
    plain = connected(broker, unique("lab-rap-plain"))
    plain.subscribe("lab/rap/#")
    publisher = connected(broker, unique("lab-rap-pub"))
    assert publisher.publish("lab/rap/state", b"on", retain=True) == 0
    assert publisher.publish("lab/rap/event", b"ring", retain=False) == 0

    assert [(m.payload, m.retain) for m in kept.messages(2)] == [(b"on", True), (b"ring", False)]
    # Without the option, a live message goes out with retain 0 (MQTT-3.3.1-13).
    assert [(m.payload, m.retain) for m in plain.messages(2)] == [(b"on", False), (b"ring", False)]
    assert publisher.publish("lab/rap/state", b"", retain=True) == 0  # clears the retained message
    for peer in (kept, plain, publisher):
        peer.leave()


def test_retain_handling_0_1_2(broker: int):
    publisher = connected(broker, unique("lab-rh-pub"))
    assert publisher.publish("lab/rh/state", b"armed", retain=True) == 0
    assert publisher.publish("lab/rhbarrier/x", b"barrier", retain=True) == 0

    def barrier(peer: Peer) -> list:
        """Subscribes to the barrier's topic: its retained message comes after whatever the
        previous SUBSCRIBE sent (the broker handles a connection's SUBSCRIBEs in order); returns
        the payloads that arrived before it."""
        peer.subscribe("lab/rhbarrier/x", retain_handling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
        before = []
        while (m := peer.message()).payload != b"barrier":
            before.append(m.payload)
        peer.client.unsubscribe("lab/rhbarrier/x")
        return before

    # 0: on every subscribe, also a repeated one.
    always = connected(broker, unique("lab-rh0"))
    always.subscribe("lab/rh/#", retain_handling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
    m = always.message()
    assert (m.topic, m.payload, m.retain) == ("lab/rh/state", b"armed", True)
    always.subscribe("lab/rh/#", retain_handling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
    assert barrier(always) == [b"armed"], "retain handling 0: sent again on a repeated subscribe"

    # 1: only when the subscription is new.
    if_new = connected(broker, unique("lab-rh1"))
    if_new.subscribe("lab/rh/#", retain_handling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
    m = if_new.message()
    assert (m.topic, m.payload, m.retain) == ("lab/rh/state", b"armed", True)
    if_new.subscribe("lab/rh/#", retain_handling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
    assert barrier(if_new) == [], "retain handling 1: nothing on re-subscribing"

    # 2: never; the subscription itself works.
    never = connected(broker, unique("lab-rh2"))
    never.subscribe("lab/rh/#", retain_handling=SubscribeOptions.RETAIN_DO_NOT_SEND)
    assert barrier(never) == [], "retain handling 2: no retained messages"
    assert publisher.publish("lab/rh/state", b"live") == 0
    m = never.message()
    assert (m.payload, m.retain) == (b"live", False)

    assert publisher.publish("lab/rh/state", b"", retain=True) == 0
    assert publisher.publish("lab/rhbarrier/x", b"", retain=True) == 0
    for peer in (publisher, always, if_new, never):
        peer.leave()


# 5. Subscription identifiers


def test_subscription_identifiers_come_with_the_messages(broker: int):
    sub = connected(broker, unique("lab-sid"))
    sub.subscribe("lab/sid/#", identifier=7)
    publisher = connected(broker, unique("lab-sid-pub"))
    assert publisher.publish("lab/sid/a", b"one") == 0
    m = sub.message()
    assert m.payload == b"one" and prop(m.properties, "SubscriptionIdentifier") == [7]

    # Overlapping: one copy carrying both identifiers (MQTT-3.3.4-4; their order is not significant).
    sub.subscribe("lab/sid/+", identifier=9)
    assert publisher.publish("lab/sid/a", b"two") == 0  # matches both
    assert publisher.publish("lab/sid/a/b", b"three") == 0  # matches lab/sid/# only
    m = sub.message()
    assert m.payload == b"two"
    assert sorted(prop(m.properties, "SubscriptionIdentifier") or []) == [7, 9], m.properties
    m = sub.message()
    assert m.payload == b"three", f"one copy of 'two' expected, then 'three'; got {m.payload!r}"
    assert prop(m.properties, "SubscriptionIdentifier") == [7]

    # A subscription without an identifier adds none.
    plain = connected(broker, unique("lab-sid-plain"))
    plain.subscribe("lab/sid/#")
    assert publisher.publish("lab/sid/a", b"four") == 0
    m = plain.message()
    assert m.payload == b"four" and prop(m.properties, "SubscriptionIdentifier") is None
    for peer in (sub, publisher, plain):
        peer.leave()


# 6. Topic aliases from the client


def test_topic_aliases_from_the_client_are_resolved_for_subscribers(broker: int):
    sub = connected(broker, unique("lab-alias-sub"))
    sub.subscribe("lab/alias/#")
    v3 = connected(broker, unique("lab-alias-v311"), v5=False)
    v3.subscribe("lab/alias/#")
    publisher = connected(broker, unique("lab-alias-pub"))
    assert publisher.publish("lab/alias/meter/7", b"1.5 kWh", TopicAlias=5) == 0
    assert publisher.publish("", b"1.6 kWh", TopicAlias=5) == 0  # the topic by its alias only
    assert publisher.publish("lab/alias/meter/8", b"9 kWh", TopicAlias=5) == 0  # the alias set anew
    assert publisher.publish("", b"10 kWh", qos=0, TopicAlias=5, wait=False).rc == 0
    assert publisher.publish("lab/alias/meter/9", b"end", TopicAlias=64) == 0  # the maximum is allowed

    expected = [("lab/alias/meter/7", b"1.5 kWh"), ("lab/alias/meter/7", b"1.6 kWh"), ("lab/alias/meter/8", b"9 kWh"),
                ("lab/alias/meter/8", b"10 kWh"), ("lab/alias/meter/9", b"end")]
    got = sub.messages(5)
    assert [(m.topic, m.payload) for m in got] == expected
    assert all(prop(m.properties, "TopicAlias") is None for m in got), "the subscriber set no Topic Alias Maximum"
    assert [(m.topic, m.payload) for m in v3.messages(5)] == expected
    assert publisher.client.is_connected()
    for peer in (sub, v3, publisher):
        peer.leave()


def test_a_topic_alias_above_the_maximum_is_disconnected_with_0x94(broker: int):
    sub = connected(broker, unique("lab-alias-bad-sub"))
    sub.subscribe("lab/aliasbad/#")
    bad = connected(broker, unique("lab-alias-bad"))
    assert prop(bad.connack[2], "TopicAliasMaximum") == 64
    bad.publish("lab/aliasbad/x", b"over", qos=1, TopicAlias=65, wait=False)
    reason, _ = bad.disconnected()
    assert reason.value == 0x94, f"DISCONNECT {reason} ({reason.value:#x}), expected 0x94 Topic Alias invalid"
    bad.client.loop_stop()
    # Nothing was routed.
    publisher = connected(broker, unique("lab-alias-bad-pub"))
    assert publisher.publish("lab/aliasbad/y", b"after") == 0
    assert sub.message().payload == b"after"
    sub.leave()
    publisher.leave()


# 7. Message expiry


def test_expired_messages_are_not_delivered_and_the_rest_count_down(broker: int):
    client_id = unique("lab-expiry-sub")
    sub = connected(broker, client_id, clean_start=True, SessionExpiryInterval=300)
    sub.subscribe("lab/expiry/#")
    sub.leave()
    publisher = connected(broker, unique("lab-expiry-pub"))
    sent = [("short-1", 1), ("long-1", 120), ("short-2", 1), ("long-2", 120), ("short-3", 1), ("long-3", 120)]
    for payload, interval in sent:
        assert publisher.publish("lab/expiry/t", payload.encode(), MessageExpiryInterval=interval) == 0
    published = time.monotonic()
    publisher.leave()
    time.sleep(max(0.0, published + 2.5 - time.monotonic()))

    back = Peer(broker, client_id)
    reason, present, _ = back.connect(clean_start=False, SessionExpiryInterval=300)
    assert reason == 0 and present is True
    got = []
    while not got or got[-1].payload != b"long-3":
        got.append(back.message())
    assert [m.payload for m in got] == [b"long-1", b"long-2", b"long-3"], "the 1-second ones expired while queued"
    for m in got:
        left = prop(m.properties, "MessageExpiryInterval")
        assert left is not None and 115 <= left <= 120, f"expiry interval {left}: 120 minus the time waited (MQTT-3.3.2-6)"
    back.leave()


# 8. Session expiry


def test_session_expiry_interval(broker: int):
    client_id = unique("lab-session")
    first = connected(broker, client_id, clean_start=True, SessionExpiryInterval=2)
    assert prop(first.connack[2], "SessionExpiryInterval") is None, "granted as asked: not repeated in CONNACK"
    first.subscribe("lab/session/#")
    first.leave()
    left = time.monotonic()
    time.sleep(0.5)
    again = Peer(broker, client_id)
    reason, present, _ = again.connect(clean_start=False, SessionExpiryInterval=2)
    assert reason == 0 and present is True, f"{time.monotonic() - left:.1f} s after: the session is still there"
    again.leave()
    left = time.monotonic()
    time.sleep(3)
    late = Peer(broker, client_id)
    reason, present, _ = late.connect(clean_start=False, SessionExpiryInterval=2)
    assert reason == 0 and present is False, f"{time.monotonic() - left:.1f} s after, past its 2 s expiry"
    late.leave()


def test_session_expiry_0_ends_the_session_with_its_connection(broker: int):
    client_id = unique("lab-session0")
    first = connected(broker, client_id, clean_start=False)  # no Session Expiry Interval: 0
    first.subscribe("lab/session0/#")
    first.leave()
    back = Peer(broker, client_id)
    reason, present, _ = back.connect(clean_start=False, SessionExpiryInterval=0)
    assert reason == 0 and present is False
    back.leave()


def test_the_broker_caps_a_session_that_never_expires_and_says_so(broker: int):
    peer = connected(broker, unique("lab-forever"), SessionExpiryInterval=0xFFFFFFFF)
    assert prop(peer.connack[2], "SessionExpiryInterval") == 7 * 86_400, peer.connack[2]
    peer.client.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))  # don't leave it behind
    peer.disconnected()
    peer.client.loop_stop()


# 9. Server DISCONNECT reasons


def test_a_second_connection_with_the_same_client_id_takes_the_session_over(broker: int):
    client_id = unique("lab-takeover")
    first = connected(broker, client_id)
    second = connected(broker, client_id)
    reason, _ = first.disconnected()
    assert reason.value == 0x8E, f"DISCONNECT {reason} ({reason.value:#x}), expected 0x8E Session taken over"
    first.client.loop_stop()
    # The newcomer has the client id now.
    second.subscribe("lab/takeover/#")
    publisher = connected(broker, unique("lab-takeover-pub"))
    assert publisher.publish("lab/takeover/x", b"hello") == 0
    assert second.message().payload == b"hello"
    assert second.client.is_connected()
    second.leave()
    publisher.leave()


# 10. Not authorized


def test_a_publish_to_a_topic_not_allowed_gets_puback_0x87_and_the_connection_stays(broker: int):
    watcher = connected(broker, unique("frigate-watcher"), username="frigate", password=FRIGATE_PASSWORD)
    watcher.subscribe("frigate/#")
    nvr = connected(broker, unique("frigate-nvr"), username="frigate", password=FRIGATE_PASSWORD)
    reason = nvr.publish("other/x", b"not mine", qos=1)
    assert reason.value == 0x87, f"PUBACK {reason} ({reason.value:#x}), expected 0x87 Not authorized"
    assert nvr.client.is_connected()
    assert nvr.publish("frigate/events", b"person at gate", qos=1) == 0
    assert watcher.message().payload == b"person at gate"
    assert nvr.disconnects.empty(), "still connected"
    watcher.leave()
    nvr.leave()


# 11. Will delay


def test_the_will_waits_for_its_delay_and_not_at_all_for_a_client_back_in_time(broker: int):
    watcher = connected(broker, unique("lab-will-watcher"))
    watcher.subscribe("lab/will/#")
    gone_id, back_id = unique("lab-will-gone"), unique("lab-will-back")
    gone = connected(broker, gone_id, will=("lab/will/gone", b"offline", 1, props(PacketTypes.WILLMESSAGE, WillDelayInterval=2)),
                     SessionExpiryInterval=60)
    # A longer delay for the one that comes back, so that a slow reconnection on a loaded machine
    # still comes back well within it.
    back = connected(broker, back_id, will=("lab/will/back", b"offline", 1, props(PacketTypes.WILLMESSAGE, WillDelayInterval=4)),
                     SessionExpiryInterval=60)

    dropped = gone.drop()
    back.drop()
    returned = connected(broker, back_id, clean_start=False, SessionExpiryInterval=60)
    assert returned.connack[1] is True, "session present"
    assert time.monotonic() - dropped < 3, "the test must come back well within the 4 s delay"

    watcher.nothing(within=max(0.0, dropped + 1.0 - time.monotonic()))  # not within 1 s
    try:
        arrived, m = watcher.inbox.get(timeout=WAIT)
    except queue.Empty:
        pytest.fail(f"no will within {WAIT} s of the drop")
    assert m.topic == "lab/will/gone", f"only the client that stayed away has its will sent, got {m.topic}"
    assert m.payload == b"offline"
    assert arrived - dropped >= 1.8, f"the will came {arrived - dropped:.2f} s after the drop, before its 2 s delay"
    assert arrived - dropped < 10, f"the will came {arrived - dropped:.2f} s after the drop"
    # The other one's delay is over too, counted from its drop: its will never comes.
    watcher.nothing(within=max(0.5, dropped + 4.5 - time.monotonic()))
    returned.leave()
    watcher.leave()


# 12. Shared subscriptions


def test_shared_subscription_spreads_messages_over_its_members_each_once(broker: int):
    members = [connected(broker, unique("lab-worker-a")), connected(broker, unique("lab-worker-b")),
               connected(broker, unique("lab-worker-c"), v5=False)]
    for member in members:
        assert member.subscribe("$share/workers/jobs/#") == [1]
    everything = connected(broker, unique("lab-jobs-all"))
    everything.subscribe("jobs/#")
    publisher = connected(broker, unique("lab-jobs-pub"))
    total = 1_000
    infos = [publisher.publish(f"jobs/{n}", f"job {n}".encode(), qos=1, wait=False) for n in range(total)]
    for info in infos:
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published()

    received: dict[int, list[bytes]] = {i: [] for i in range(len(members))}
    deadline = time.monotonic() + 30
    while sum(map(len, received.values())) < total and time.monotonic() < deadline:
        for i, member in enumerate(members):
            try:
                while True:
                    received[i].append(member.inbox.get_nowait()[1].payload)
            except queue.Empty:
                pass
        time.sleep(0.02)
    # Anything beyond one copy each would come right behind the rest.
    time.sleep(0.5)
    for i, member in enumerate(members):
        while not member.inbox.empty():
            received[i].append(member.inbox.get_nowait()[1].payload)
    everyone = [p for got in received.values() for p in got]
    assert len(everyone) == total and set(everyone) == {f"job {n}".encode() for n in range(total)}, \
        f"{len(everyone)} deliveries, {len(set(everyone))} distinct, of {total}"
    shares = {i: len(got) for i, got in received.items()}
    assert all(n >= total // 5 for n in shares.values()), f"round robin among the connected members: {shares}"

    all_of_them = [m.payload for m in everything.messages(total)]
    assert all_of_them == [f"job {n}".encode() for n in range(total)], "a plain subscriber gets every one, in order"
    for peer in (*members, everything, publisher):
        peer.leave()


# 13. Maximum packet size from the client


def test_a_message_larger_than_the_clients_maximum_packet_size_is_not_sent(broker: int):
    small = connected(broker, unique("lab-maxpkt"), MaximumPacketSize=200)
    small.subscribe("lab/maxpkt/#")
    big = connected(broker, unique("lab-maxpkt-big"))
    big.subscribe("lab/maxpkt/#")
    publisher = connected(broker, unique("lab-maxpkt-pub"))
    assert publisher.publish("lab/maxpkt/snapshot", b"x" * 1000) == 0
    assert publisher.publish("lab/maxpkt/status", b"small") == 0
    m = small.message()
    assert (m.topic, m.payload) == ("lab/maxpkt/status", b"small"), \
        f"the 1,000-byte message went to a client that takes 200 bytes at most ({len(m.payload)} bytes)"
    assert small.client.is_connected()
    assert [m.payload for m in big.messages(2)] == [b"x" * 1000, b"small"]
    for peer in (small, big, publisher):
        peer.leave()


# 14. Receive maximum from the client


def test_receive_maximum_bounds_the_unacknowledged_messages_in_flight(broker: int):
    slow = connected(broker, unique("lab-recvmax"), manual_ack=True, ReceiveMaximum=2)
    slow.subscribe("lab/recvmax/#")
    publisher = connected(broker, unique("lab-recvmax-pub"))
    for i in range(5):
        assert publisher.publish("lab/recvmax/t", f"m{i}".encode()) == 0

    first = slow.messages(2)
    assert [m.payload for m in first] == [b"m0", b"m1"]
    slow.nothing(within=1.0)  # two in flight, unacknowledged: the third waits
    slow.client.ack(first[0].mid, 1)
    third = slow.message()
    assert third.payload == b"m2"
    slow.nothing(within=0.5)  # room for one only
    for m in (first[1], third):
        slow.client.ack(m.mid, 1)
    rest = slow.messages(2)
    assert [m.payload for m in rest] == [b"m3", b"m4"]
    for m in rest:
        slow.client.ack(m.mid, 1)
    slow.leave()
    publisher.leave()
