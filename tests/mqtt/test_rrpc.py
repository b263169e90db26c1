"""Sync services over RRPC, as Alibaba's platform calls them: a service whose callType is `sync` goes
to the device on `/ext/rrpc/{messageId}/sys/{pk}/{dn}/thing/service/{identifier}`, and the device's
reply on that same topic is the API's answer; Linli waits for it at most 8 s. An `async` service
still goes on `/sys/{pk}/{dn}/thing/service/{identifier}` and is answered on `…_reply`. The devices
are Alibaba's Link Kit SDK for Python, unchanged, and paho-mqtt playing a device and a gateway."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import re
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests

linkkit = pytest.importorskip("linkkit.linkkit")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import alink_device, create_device, create_product, expect, provision  # noqa: E402




@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("rrpc")
    data = work / "data"
    token = provision(data)
    doors = create_product(data, "access_controller")
    smoke = create_product(data, "smoke_detector")
    gateways = create_product(data, "protocol_gateway")
    tsl = work / "access_controller.json"
    tsl.write_text(run("product", "tsl", "--data", str(data), "--product-key", doors).stdout)
    site = {
        "sdk": create_device(data, doors, "door-1"),
        "raw": create_device(data, doors, "door-2"),
        "sub": create_device(data, doors, "door-3"),
        "other": create_device(data, doors, "door-4"),
        "smoke": create_device(data, smoke, "smoke-1"),
        "gateway": create_device(data, gateways, "gw-1"),
        "tsl": str(tsl),
        "token": token,
    }
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    time.sleep(0.5)
    site.update(port=port, url=node.url)
    yield site
    assert node.stop() == 0, node.log.read_text()


def api(site: dict, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, site["url"] + "/api/v1" + path, headers={"Authorization": "Bearer " + site["token"]}, timeout=60, **kwargs)


def call_in_background(site: dict, triple: tuple[str, str, str], service: str, body: dict) -> tuple[threading.Thread, dict]:
    """Calls a service through the API on a thread; the dict gets the response and how long it took."""
    result: dict = {}

    def call():
        started = time.monotonic()
        result["r"] = api(site, "POST", f"/devices/{triple[0]}/{triple[1]}/services/{service}", json=body)
        result["took"] = time.monotonic() - started

    thread = threading.Thread(target=call)
    thread.start()
    return thread, result




def next_message(inbox: "queue.Queue", pattern: str, timeout: float = 10):
    """The next message on a topic matching `pattern` (others, such as a device's own reply routed
    back to its subscription, are skipped) and the pattern's match."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = expect(inbox, "message", max(0.1, deadline - time.monotonic()))
        found = re.fullmatch(pattern, item[1])
        if found and isinstance(item[2], dict) and "params" in item[2]:
            return item, found
    pytest.fail(f"no message on {pattern} within {timeout} s")


def rrpc_pattern(triple: tuple[str, str, str], service: str) -> str:
    return rf"/ext/rrpc/(\d+)/sys/{re.escape(triple[0])}/{re.escape(triple[1])}/thing/service/{service}"


def test_link_kit_sdk_answers_a_sync_service_on_its_rrpc_topic(site: dict, monkeypatch: pytest.MonkeyPatch):
    """Alibaba's SDK, unchanged: it takes the call from the RRPC topic and answers there, and its
    answer is the API's. What it receives and publishes is seen on its own paho client."""
    received: list[str] = []
    published: list[tuple[str, dict]] = []

    class Recording(mqtt.Client):
        def _handle_on_message(self, message):
            received.append(message.topic)
            super()._handle_on_message(message)

        def publish(self, topic, payload=None, qos=0, retain=False, properties=None):
            if topic.startswith("/ext/rrpc/"):
                published.append((topic, json.loads(payload)))
            return super().publish(topic, payload, qos, retain, properties)

    monkeypatch.setattr(linkkit.mqtt, "Client", Recording)
    pk, dn, secret = site["sdk"]
    inbox: queue.Queue = queue.Queue()
    lk = linkkit.LinkKit(host_name="cn-shanghai", product_key=pk, device_name=dn, device_secret=secret)
    lk.config_mqtt(port=site["port"], secure="", endpoint="127.0.0.1", keep_alive=60)
    lk.thing_setup(site["tsl"])
    lk.on_connect = lambda session_flag, rc, userdata: inbox.put(("connect", rc))

    def on_service(identifier, request_id, params, userdata):
        inbox.put(("service", identifier, request_id, params))
        lk.thing_answer_service(identifier, request_id, 200, {"opened": params["Seconds"]})

    lk.on_thing_call_service = on_service
    lk.connect_async()
    try:
        assert expect(inbox, "connect", 15)[1] == 0
        r = api(site, "POST", f"/devices/{pk}/{dn}/services/Unlock", json={"params": {"Seconds": 5}})
        assert r.status_code == 200, r.text
        assert r.json() == {"id": r.json()["id"], "code": 200, "data": {"opened": 5}}, "the SDK's answer, as it sent it"
        service = expect(inbox, "service", 5)
        assert service[1] == "Unlock" and service[3] == {"Seconds": 5}
        calls = [t for t in received if "/thing/service/" in t]
        assert len(calls) == 1, received
        found = re.fullmatch(rrpc_pattern(site["sdk"], "Unlock"), calls[0])
        assert found, f"the call came on {calls[0]}, not an RRPC topic"
        assert found.group(1) == service[2] == r.json()["id"], "one number: the messageId and the Alink id"
        assert published == [(calls[0], r.json())], "the SDK answered on the call's own topic"

        # Each call has a messageId of its own.
        r2 = api(site, "POST", f"/devices/{pk}/{dn}/services/Unlock", json={"params": {"Seconds": 60}})
        assert r2.status_code == 200 and r2.json()["data"] == {"opened": 60}, r2.text
        assert r2.json()["id"] != r.json()["id"]
        assert len([t for t in received if "/thing/service/" in t]) == 2

        # Checked against the thing model before anything reaches the device.
        r = api(site, "POST", f"/devices/{pk}/{dn}/services/Unlock", json={"params": {"Seconds": 61}})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "params.Seconds"
        assert len([t for t in received if "/thing/service/" in t]) == 2
    finally:
        lk.disconnect()
        lk.destruct()


def test_a_device_answers_a_sync_call_on_the_same_topic(site: dict):
    pk, dn, _ = site["raw"]
    c, inbox = alink_device(site["port"], site["raw"])
    assert expect(inbox, "connack")[1] == 0
    try:
        # The C SDK's subscription is the device's own; the whole RRPC tree and others' are not.
        c.subscribe(f"/ext/rrpc/+/sys/{pk}/{dn}/thing/service/+", 0)
        assert expect(inbox, "suback")[1] == [0]
        c.subscribe(f"/ext/rrpc/+/sys/{pk}/{site['other'][1]}/#", 0)
        assert expect(inbox, "suback")[1] == [0x80]
        c.subscribe("/ext/rrpc/+/#", 0)
        assert expect(inbox, "suback")[1] == [0x80]

        thread, result = call_in_background(site, site["raw"], "Unlock", {"params": {"Seconds": 3}})
        (_, topic, request, qos, _), found = next_message(inbox, rrpc_pattern(site["raw"], "Unlock"))
        assert qos == 0
        assert request == {"id": found.group(1), "version": "1.0", "params": {"Seconds": 3}, "method": "thing.service.Unlock"}
        # Things that are not its answer change nothing: a reply for no call, one on another
        # service's topic, a payload that is not JSON, and the async reply topic.
        c.publish(f"/ext/rrpc/999999/sys/{pk}/{dn}/thing/service/Unlock", json.dumps({"id": "999999", "code": 200, "data": {}}), qos=1)
        c.publish(f"/ext/rrpc/{found.group(1)}/sys/{pk}/{dn}/thing/service/Lock", json.dumps({"id": request["id"], "code": 200, "data": {"wrong": 1}}), qos=1)
        c.publish(topic, b"\xff not json {", qos=1)
        c.publish(topic, json.dumps([1, 2]), qos=1)
        c.publish(f"/sys/{pk}/{dn}/thing/service/Unlock_reply", json.dumps({"id": request["id"], "code": 200, "data": {"wrong": 2}}), qos=1)
        time.sleep(0.5)
        assert "r" not in result, "none of those ended the call"
        answer = {"id": request["id"], "code": 200, "data": {"opened": 3}, "message": "success"}
        info = c.publish(topic, json.dumps(answer), qos=1)
        info.wait_for_publish(5)
        assert info.is_published(), "acknowledged like any reply"
        thread.join(15)
        assert result["r"].status_code == 200, result["r"].text
        assert result["r"].json() == answer
        view = api(site, "GET", f"/devices/{pk}/{dn}").json()
        assert view["status"] == "online" and view["connected"] is True

        # Publishing on another device's RRPC topic is outside this device's topics: the connection ends.
        c.publish(f"/ext/rrpc/{found.group(1)}/sys/{pk}/{site['other'][1]}/thing/service/Unlock", json.dumps(answer), qos=1)
        expect(inbox, "disconnect", 10)
    finally:
        c.disconnect()
        c.loop_stop()


def test_a_sync_call_without_an_answer_times_out_within_8_seconds(site: dict):
    pk, dn, _ = site["raw"]
    c, inbox = alink_device(site["port"], site["raw"])
    assert expect(inbox, "connack")[1] == 0
    try:
        # A shorter timeout than 8 s is kept.
        thread, result = call_in_background(site, site["raw"], "Unlock", {"params": {"Seconds": 1}, "timeoutSeconds": 2})
        next_message(inbox, rrpc_pattern(site["raw"], "Unlock"))
        thread.join(20)
        assert result["r"].status_code == 504, result["r"].text
        assert result["r"].json()["type"].endswith("device-timeout") and "2 s" in result["r"].json()["detail"]
        assert 1.5 < result["took"] < 5, result

        # A longer one is cut to 8 s, as on Alibaba's platform, and the answer says so.
        thread, result = call_in_background(site, site["raw"], "Unlock", {"params": {"Seconds": 1}, "timeoutSeconds": 30})
        (_, topic, request, _, _), _ = next_message(inbox, rrpc_pattern(site["raw"], "Unlock"))
        thread.join(30)
        assert result["r"].status_code == 504, result["r"].text
        assert "8 s" in result["r"].json()["detail"], result["r"].json()
        assert 7.5 < result["took"] < 12, result
        # A late answer is for nothing waiting: dropped, and the device keeps its connection.
        info = c.publish(topic, json.dumps({"id": request["id"], "code": 200, "data": {}}), qos=1)
        info.wait_for_publish(5)
        assert info.is_published()
        assert api(site, "GET", f"/devices/{pk}/{dn}").json()["connected"] is True
    finally:
        c.disconnect()
        c.loop_stop()


def test_an_async_service_still_goes_on_its_sys_topic(site: dict):
    pk, dn, _ = site["smoke"]
    c, inbox = alink_device(site["port"], site["smoke"])
    assert expect(inbox, "connack")[1] == 0
    try:
        thread, result = call_in_background(site, site["smoke"], "Mute", {"params": {}})
        (_, topic, request, _, _), _ = next_message(inbox, r"/.*")
        assert topic == f"/sys/{pk}/{dn}/thing/service/Mute", topic
        assert request["method"] == "thing.service.Mute"
        # An async call's answer is its `…_reply`; the same id on an RRPC topic is not it.
        c.publish(f"/ext/rrpc/{request['id']}/sys/{pk}/{dn}/thing/service/Mute", json.dumps({"id": request["id"], "code": 200, "data": {"wrong": 1}}), qos=1)
        time.sleep(0.5)
        assert "r" not in result
        c.publish(topic + "_reply", json.dumps({"id": request["id"], "code": 200, "data": {"muted": 1}}), qos=1)
        thread.join(15)
        assert result["r"].status_code == 200, result["r"].text
        assert result["r"].json()["data"] == {"muted": 1}
    finally:
        c.disconnect()
        c.loop_stop()


def signed(triple: tuple[str, str, str]) -> dict:
    """A sub-device entry as a gateway presents it: signed with the sub-device's own secret."""
    pk, dn, secret = triple
    ts = str(int(time.time() * 1000))
    content = f"clientId{pk}.{dn}deviceName{dn}productKey{pk}timestamp{ts}"
    sign = hmac.new(secret.encode(), content.encode(), hashlib.sha256).hexdigest()
    return {"productKey": pk, "deviceName": dn, "clientId": f"{pk}.{dn}", "timestamp": ts, "signmethod": "hmacSha256", "sign": sign}


def gateway_request(c, inbox: "queue.Queue", topic: str, params, request_id: str) -> dict:
    c.publish(topic, json.dumps({"id": request_id, "version": "1.0", "params": params}), qos=1)
    while True:
        item = expect(inbox, "message", 10)
        if item[1] == topic + "_reply" and item[2]["id"] == request_id:
            return item[2]


def test_a_gateway_answers_sync_calls_for_its_sub_device(site: dict):
    """The call goes to the gateway's connection on the sub-device's RRPC topic, and the gateway
    answers there for it."""
    gpk, gdn, _ = site["gateway"]
    spk, sdn, _ = site["sub"]
    c, inbox = alink_device(site["port"], site["gateway"])
    assert expect(inbox, "connack")[1] == 0
    try:
        c.subscribe(f"/sys/{gpk}/{gdn}/thing/topo/#", 1)
        c.subscribe(f"/ext/session/{gpk}/{gdn}/#", 1)
        expect(inbox, "suback")
        expect(inbox, "suback")
        # Before the sub-device is attached, its RRPC topics are not the gateway's.
        c.subscribe(f"/ext/rrpc/+/sys/{spk}/{sdn}/thing/service/+", 0)
        assert expect(inbox, "suback")[1] == [0x80]
        assert gateway_request(c, inbox, f"/sys/{gpk}/{gdn}/thing/topo/add", [signed(site["sub"])], "1")["code"] == 200
        assert gateway_request(c, inbox, f"/ext/session/{gpk}/{gdn}/combine/login", signed(site["sub"]), "2")["code"] == 200
        c.subscribe(f"/ext/rrpc/+/sys/{spk}/{sdn}/thing/service/+", 0)
        assert expect(inbox, "suback")[1] == [0]

        thread, result = call_in_background(site, site["sub"], "Unlock", {"params": {"Seconds": 10}})
        (_, topic, request, _, _), found = next_message(inbox, rrpc_pattern(site["sub"], "Unlock"))
        assert request["params"] == {"Seconds": 10} and request["id"] == found.group(1)
        answer = {"id": request["id"], "code": 200, "data": {"opened": 10}, "message": "success"}
        c.publish(topic, json.dumps(answer), qos=1)
        thread.join(15)
        assert result["r"].status_code == 200, result["r"].text
        assert result["r"].json() == answer

        # Signed out, the sub-device cannot be called; and the RRPC topics of a device that is
        # not attached are not the gateway's: publishing there ends its connection.
        assert gateway_request(c, inbox, f"/ext/session/{gpk}/{gdn}/combine/logout", {"productKey": spk, "deviceName": sdn}, "3")["code"] == 200
        assert api(site, "POST", f"/devices/{spk}/{sdn}/services/Unlock", json={"params": {"Seconds": 1}}).status_code == 409
        other_pk, other_dn, _ = site["other"]
        c.publish(f"/ext/rrpc/1/sys/{other_pk}/{other_dn}/thing/service/Unlock", json.dumps(answer), qos=1)
        expect(inbox, "disconnect", 10)
    finally:
        c.disconnect()
        c.loop_stop()
