"""Devices signing in with Alink (one secret per device, HMAC-signed CONNECT) and posting properties
that Linli checks against the product's thing model, with paho-mqtt as the device."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import expect, paho  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("alink") / "data"
    run("demo", "--data", str(data))
    run("user", "create", "--data", str(data), "--username", "ops", "--role", "platform_admin", "--password-stdin", stdin="operations-password-1\n")
    token = run("token", "create", "--data", str(data), "--username", "ops", "--name", "t").stdout.strip().splitlines()[-1]
    product_key = run("product", "create", "--data", str(data), "--library", "environment_sensor").stdout.strip().splitlines()[-1]
    pk, dn, secret = run("device", "create", "--data", str(data), "--product-key", product_key, "--name", "env-01").stdout.strip().splitlines()[-1].split()
    _, other, _ = run("device", "create", "--data", str(data), "--product-key", product_key, "--name", "env-02").stdout.strip().splitlines()[-1].split()
    _, mute, mute_secret = run("device", "create", "--data", str(data), "--product-key", product_key, "--name", "env-03").stdout.strip().splitlines()[-1].split()
    _, kept, kept_secret = run("device", "create", "--data", str(data), "--product-key", product_key, "--name", "env-04").stdout.strip().splitlines()[-1].split()
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    time.sleep(0.5)
    yield {"port": port, "pk": pk, "dn": dn, "secret": secret, "other": other, "mute": (mute, mute_secret), "kept": (kept, kept_secret),
           "url": node.url, "token": token}
    assert node.stop() == 0, node.log.read_text()


def device(site: dict, secret: str | None = None, timestamp_ms: int | None = None, name: str | None = None):
    """A device signing in the Alink way: HMAC-SHA256 of the sorted parameters with its secret."""
    pk, dn = site["pk"], name or site["dn"]
    ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    content = f"clientId{dn}deviceName{dn}productKey{pk}timestamp{ts}"
    password = hmac.new((secret or site["secret"]).encode(), content.encode(), hashlib.sha256).hexdigest()
    return paho(site["port"], f"{dn}|securemode=3,signmethod=hmacsha256,timestamp={ts}|", f"{dn}&{pk}", password, decode=json.loads)


def test_signed_device_posts_properties_and_gets_checked_replies(site: dict):
    c, inbox = device(site)
    assert expect(inbox, "connack")[1] == 0
    base = f"/sys/{site['pk']}/{site['dn']}/thing/event/property/post"
    c.subscribe(base + "_reply", 1)
    assert expect(inbox, "suback")[1] == [1]

    def post(request_id: str, params: dict) -> dict:
        c.publish(base, json.dumps({"id": request_id, "version": "1.0", "params": params, "method": "thing.event.property.post"}), qos=1)
        reply = expect(inbox, "message")[2]
        assert reply["id"] == request_id
        return reply

    assert post("1", {"CurrentTemperature": 21.5, "CurrentHumidity": 40, "PM25": 35})["code"] == 200
    too_hot = post("2", {"CurrentTemperature": 500})
    assert too_hot["code"] == 6306 and "CurrentTemperature" in too_hot["message"]
    assert post("3", {"Colour": "red"})["code"] == 6304
    c.publish(base, b"not json", qos=1)
    assert expect(inbox, "message")[2]["code"] == 460

    # `"sys": {"ack": 0}` asks for no reply; the post is still stored (and PUBACKed).
    info = c.publish(base, json.dumps({"id": "4", "version": "1.0", "sys": {"ack": 0}, "params": {"CurrentTemperature": 23.25}}), qos=1)
    info.wait_for_publish(5)
    assert info.is_published()
    assert post("5", {"CurrentHumidity": 41})["id"] == "5", "the next reply is for the next post: none came for the silent one"
    shadow = requests.get(site["url"] + f"/api/v1/devices/{site['pk']}/{site['dn']}/shadow", headers={"Authorization": "Bearer " + site["token"]}, timeout=10).json()
    assert {v["identifier"]: v.get("reported") for v in shadow["items"]}["CurrentTemperature"] == "23.25"

    # The device came online, as an event on the log.
    events = requests.get(site["url"] + "/api/v1/events?limit=500", headers={"Authorization": "Bearer " + site["token"]}, timeout=10).json()["items"]
    assert any(e["type"] == "device.online" for e in events)

    # Another device's topic is off limits: the connection is closed.
    c.publish(f"/sys/{site['pk']}/{site['other']}/thing/event/property/post", b"{}", qos=1)
    expect(inbox, "disconnect")
    c.loop_stop()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = requests.get(site["url"] + "/api/v1/events?limit=500", headers={"Authorization": "Bearer " + site["token"]}, timeout=10).json()["items"]
        if any(e["type"] == "device.offline" for e in events):
            break
        time.sleep(0.2)
    else:
        pytest.fail("no device.offline event")


def test_wrong_secret_and_stale_signatures_are_refused(site: dict):
    wrong, inbox = device(site, secret="not-the-secret")
    assert expect(inbox, "connack")[1] != 0
    wrong.loop_stop()
    stale, inbox = device(site, timestamp_ms=int(time.time() * 1000) - 3_600_000)
    assert expect(inbox, "connack")[1] != 0
    stale.loop_stop()


def test_a_devices_time_is_checked_so_one_wrong_clock_cannot_freeze_the_shadow(site: dict):
    c, inbox = device(site)
    assert expect(inbox, "connack")[1] == 0
    base = f"/sys/{site['pk']}/{site['dn']}/thing/event/property/post"
    c.subscribe(base + "_reply", 1)
    expect(inbox, "suback")

    def post(request_id: str, params: dict) -> dict:
        c.publish(base, json.dumps({"id": request_id, "version": "1.0", "params": params, "method": "thing.event.property.post"}), qos=1)
        return expect(inbox, "message")[2]

    now = int(time.time() * 1000)
    for i, bad in enumerate([9223372036854775807, now + 2 * 3_600_000, -5, "abc", 1700000000000.5]):
        refused = post(f"t{i}", {"CurrentTemperature": {"value": 4.0, "time": bad}})
        assert refused["code"] == 6306 and "CurrentTemperature.time" in refused["message"], (bad, refused)
    assert post("t9", {"CurrentTemperature": {"value": 18.5, "time": now - 1000}})["code"] == 200
    assert post("t10", {"CurrentTemperature": {"value": 19.5, "time": (now + 500) // 1000}})["code"] == 200, "seconds are taken too"
    shadow = requests.get(site["url"] + f"/api/v1/devices/{site['pk']}/{site['dn']}/shadow", headers={"Authorization": "Bearer " + site["token"]}, timeout=10).json()
    temperature = next(v for v in shadow["items"] if v["identifier"] == "CurrentTemperature")
    assert temperature["reported"] == "19.5" and temperature["reportedAt"] == (now + 500) // 1000 * 1000
    c.disconnect()
    c.loop_stop()


def test_a_device_without_a_clock_asks_the_time(site: dict):
    """Alink's NTP service: a device with no clock of its own publishes its send time and computes
    the server's time from the answer, which it then uses for its measurements' `time`."""
    c, inbox = device(site)
    assert expect(inbox, "connack")[1] == 0
    pk, dn = site["pk"], site["dn"]
    c.subscribe(f"/ext/ntp/{pk}/{dn}/response", 0)
    assert expect(inbox, "suback")[1] == [0], "the response topic may be subscribed to"
    device_clock = 1_000  # a device just powered on: its clock starts near zero
    c.publish(f"/ext/ntp/{pk}/{dn}/request", json.dumps({"deviceSendTime": str(device_clock)}), qos=0)
    before = int(time.time() * 1000)
    answer = expect(inbox, "message")[2]
    after = int(time.time() * 1000)
    assert answer["deviceSendTime"] == str(device_clock)
    received, sent = int(answer["serverRecvTime"]), int(answer["serverSendTime"])
    assert before - 1000 <= received <= sent <= after
    # The device's reckoning, with its receive time on its own clock: within the round trip of now.
    device_receive = device_clock + (after - before)
    server_now = (received + sent + device_receive - device_clock) // 2
    assert abs(server_now - after) <= (after - before) + 1000
    # A request without a send time still gets the server's times.
    c.publish(f"/ext/ntp/{pk}/{dn}/request", b"{}", qos=0)
    bare = expect(inbox, "message")[2]
    assert "deviceSendTime" not in bare and int(bare["serverSendTime"]) >= received
    # Asking on another device's NTP topic is outside this device's topics: the connection is closed.
    c.publish(f"/ext/ntp/{pk}/{site['other']}/request", b"{}", qos=0)
    expect(inbox, "disconnect")
    c.loop_stop()


def test_a_batch_post_stores_what_a_device_kept_each_at_its_time(site: dict):
    """`thing.event.property.batch.post`: a sensor back after an outage posts the readings it kept.
    Each is stored at its own time, the shadow takes the newest, and one bad entry refuses the lot."""
    name, secret = site["kept"]
    c, inbox = device(site, secret=secret, name=name)
    assert expect(inbox, "connack")[1] == 0
    topic = f"/sys/{site['pk']}/{name}/thing/event/property/batch/post"
    c.subscribe(topic + "_reply", 0)
    expect(inbox, "suback")
    now = int(time.time() * 1000)
    hours = [now - (3 - i) * 3_600_000 for i in range(3)]

    def post(request_id: str, params: dict) -> dict:
        c.publish(topic, json.dumps({"id": request_id, "version": "1.0", "params": params, "method": "thing.event.property.batch.post"}), qos=1)
        reply = expect(inbox, "message")[2]
        assert reply["id"] == request_id
        return reply

    kept = {"CurrentTemperature": [{"value": 18.5 + i, "time": t} for i, t in enumerate(hours)], "PM25": [{"value": 40, "time": hours[1]}]}
    assert post("b1", {"properties": kept})["code"] == 200
    headers = {"Authorization": "Bearer " + site["token"]}
    points = requests.get(site["url"] + f"/api/v1/devices/{site['pk']}/{name}/telemetry?property=CurrentTemperature&from={hours[0] - 1}",
                          headers=headers, timeout=10).json()["points"]
    assert [(p["t"], p["value"]) for p in points] == [(t, 18.5 + i) for i, t in enumerate(hours)]
    shadow = {v["identifier"]: v for v in requests.get(site["url"] + f"/api/v1/devices/{site['pk']}/{name}/shadow", headers=headers, timeout=10).json()["items"]}
    assert shadow["CurrentTemperature"]["reported"] == "20.5" and shadow["CurrentTemperature"]["reportedAt"] == hours[2]

    refused = post("b2", {"properties": {"CurrentTemperature": [{"value": 19, "time": now}, {"value": 500, "time": now}]}})
    assert refused["code"] == 6306 and "properties.CurrentTemperature[1].value" in refused["message"]
    points = requests.get(site["url"] + f"/api/v1/devices/{site['pk']}/{name}/telemetry?property=CurrentTemperature&from={hours[0] - 1}",
                          headers=headers, timeout=10).json()["points"]
    assert len(points) == 3, "nothing of a refused batch is stored"
    c.disconnect()
    c.loop_stop()


def test_a_command_fails_at_once_when_its_device_is_disabled(site: dict):
    """The device takes the property set and never answers; disabling it ends the wait with 409
    instead of the full timeout."""
    name, secret = site["mute"]
    c, inbox = device(site, secret=secret, name=name)
    assert expect(inbox, "connack")[1] == 0
    c.subscribe(f"/sys/{site['pk']}/{name}/thing/service/property/set", 0)
    expect(inbox, "suback")
    headers = {"Authorization": "Bearer " + site["token"]}
    answer: dict = {}

    def command():
        started = time.monotonic()
        r = requests.post(f"{site['url']}/api/v1/devices/{site['pk']}/{name}/properties", headers=headers,
                          json={"params": {"ReportInterval": 60}, "timeoutSeconds": 30}, timeout=60)
        answer.update(status=r.status_code, took=time.monotonic() - started, body=r.json())

    waiting = threading.Thread(target=command)
    waiting.start()
    assert expect(inbox, "message")[2]["params"] == {"ReportInterval": 60}, "the device got the set"
    disabled = requests.patch(f"{site['url']}/api/v1/devices/{site['pk']}/{name}", headers=headers, json={"enabled": False}, timeout=10)
    assert disabled.status_code == 200, disabled.text
    waiting.join(40)
    assert answer["status"] == 409 and answer["took"] < 10, answer
    c.loop_stop()
