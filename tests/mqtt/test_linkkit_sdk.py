"""Alibaba's own Link Kit SDK for Python (aliyun-iot-linkkit on PyPI), pointed at Linli on
127.0.0.1 without TLS, unchanged: it signs in with the device triple, posts properties and events,
and receives a property set and a service call from Linli's API and answers them."""

from __future__ import annotations

import queue
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

linkkit = pytest.importorskip("linkkit.linkkit")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import expect, link_kit  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("linkkit")
    data = work / "data"
    run("demo", "--data", str(data))
    run("user", "create", "--data", str(data), "--username", "ops", "--role", "platform_admin", "--password-stdin", stdin="operations-password-1\n")
    token = run("token", "create", "--data", str(data), "--username", "ops", "--name", "t").stdout.strip().splitlines()[-1]
    product_key = run("product", "create", "--data", str(data), "--library", "street_light").stdout.strip().splitlines()[-1]
    pk, dn, secret = run("device", "create", "--data", str(data), "--product-key", product_key, "--name", "lamp-7").stdout.strip().splitlines()[-1].split()
    tsl = work / "tsl.json"
    tsl.write_text(run("product", "tsl", "--data", str(data), "--product-key", pk).stdout)
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    time.sleep(0.5)
    yield {"port": port, "pk": pk, "dn": dn, "secret": secret, "tsl": str(tsl), "url": node.url, "token": token}
    assert node.stop() == 0, node.log.read_text()


def test_link_kit_sdk_round_trip(site: dict):
    inbox: queue.Queue = queue.Queue()
    lk = link_kit(site["port"], (site["pk"], site["dn"], site["secret"]), site["tsl"], inbox)
    lk.on_thing_prop_post = lambda request_id, code, data, message, userdata: inbox.put(("prop", code, message))
    lk.on_thing_event_post = lambda event, request_id, code, data, message, userdata: inbox.put(("event", event, code, message))
    lk.on_thing_prop_changed = lambda params, userdata: inbox.put(("changed", params))

    def on_service(identifier, request_id, params, userdata):
        inbox.put(("service", identifier, params))
        lk.thing_answer_service(identifier, request_id, 200, {"accepted": 1})

    lk.on_thing_call_service = on_service
    lk.connect_async()
    api = site["url"] + f"/api/v1/devices/{site['pk']}/{site['dn']}"
    headers = {"Authorization": "Bearer " + site["token"]}
    try:
        assert expect(inbox, "connect", 15)[1] == 0
        # Device → Linli: property posts (checked against the thing model) and an event.
        assert lk.thing_post_property({"LightSwitch": 1, "Brightness": 80, "Power": 35.5})[0] == 0
        assert expect(inbox, "prop", 15)[1] == 200
        assert lk.thing_post_property({"Brightness": 101})[0] == 0
        reply = expect(inbox, "prop", 15)
        assert reply[1] == 6306 and "Brightness" in reply[2]
        assert lk.thing_trigger_event(("LampFault", {}))[0] == 0
        event = expect(inbox, "event", 15)
        assert event[1] == "LampFault" and event[2] == 200

        # Linli → device: a property set through the API; the SDK applies it and replies.
        result: dict = {}
        call = threading.Thread(target=lambda: result.update(r=requests.post(api + "/properties", headers=headers, json={"params": {"LightSwitch": 0}}, timeout=30)))
        call.start()
        assert expect(inbox, "changed", 15)[1] == {"LightSwitch": 0}
        call.join(30)
        assert result["r"].status_code == 200, result["r"].text
        assert result["r"].json()["code"] == 200

        # A service call with its inputs; the SDK's answer comes back as the API's answer.
        r = requests.post(api + "/services/SetSchedule", headers=headers, json={"params": {"OnTime": "18:30", "OffTime": "06:00"}}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["code"] == 200 and r.json()["data"] == {"accepted": 1}
        service = expect(inbox, "service", 5)
        assert service[1] == "SetSchedule" and service[2] == {"OnTime": "18:30", "OffTime": "06:00"}

        # Refused before anything reaches the device.
        r = requests.post(api + "/properties", headers=headers, json={"params": {"Power": 1}}, timeout=30)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "params.Power"
        r = requests.post(api + "/services/SetSchedule", headers=headers, json={"params": {"OnTime": "18:30"}}, timeout=30)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "params.OffTime"
        assert requests.post(api + "/services/SelfDestruct", headers=headers, json={"params": {}}, timeout=30).status_code == 404
    finally:
        lk.disconnect()
        lk.destruct()
    # Once the device is gone, commands are refused at once. The SDK closes its socket in the
    # background, so wait until the server has seen the connection end.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and requests.get(api, headers=headers, timeout=10).json().get("status") != "offline":
        time.sleep(0.1)
    r = requests.post(api + "/properties", headers=headers, json={"params": {"LightSwitch": 1}}, timeout=30)
    assert r.status_code == 409


def test_link_kit_states_labels_about_itself(site: dict):
    """`thing_update_tags` and `thing_remove_tags` (Alink's thing.deviceinfo.update/delete): the
    device's labels in the registry, all or none of a request, a fault named with 460."""
    inbox: queue.Queue = queue.Queue()
    lk = link_kit(site["port"], (site["pk"], site["dn"], site["secret"]), site["tsl"], inbox)
    lk.on_thing_device_info_update = lambda request_id, code, data, message, userdata: inbox.put(("update", code, message))
    lk.on_thing_device_info_delete = lambda request_id, code, data, message, userdata: inbox.put(("delete", code, message))
    lk.connect_async()
    api = site["url"] + f"/api/v1/devices/{site['pk']}/{site['dn']}"
    headers = {"Authorization": "Bearer " + site["token"]}
    try:
        assert expect(inbox, "connect", 15)[1] == 0
        assert lk.thing_update_tags({"vendor": "海康威视", "model": "DS-2CD", "batch": "2026-11"})[0] == 0
        assert expect(inbox, "update", 10)[1] == 200
        assert requests.get(api, headers=headers, timeout=10).json()["labels"] == {"vendor": "海康威视", "model": "DS-2CD", "batch": "2026-11"}

        # One bad key refuses the whole request, naming it; the labels stay as they were.
        assert lk.thing_update_tags({"model": "DS-3", "bad key": "x"})[0] == 0
        refused = expect(inbox, "update", 10)
        assert refused[1] == 460 and "attrKey" in refused[2], refused
        assert lk.thing_remove_tags(["batch", "never-set"])[0] == 0
        assert expect(inbox, "delete", 10)[1] == 200
        assert requests.get(api, headers=headers, timeout=10).json()["labels"] == {"vendor": "海康威视", "model": "DS-2CD"}
    finally:
        lk.disconnect()
        lk.destruct()
