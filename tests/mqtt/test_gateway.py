"""Gateways and sub-devices: a gateway attaches sub-devices (Alink topology), signs them in over its
own connection, posts for them and relays commands to them. The gateway is Alibaba's Link Kit SDK
for Python, unchanged; paho-mqtt plays the misbehaving gateway and the device that is not one."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

linkkit = pytest.importorskip("linkkit.linkkit")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402
from test_console import driver, page, element, log_in, wait  # noqa: E402,F401  (fixtures used by name)
from selenium.webdriver.common.by import By  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import OPS_PASSWORD, alink_device, create_device, create_product, expect, link_kit, provision  # noqa: E402




@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("gateway")
    data = work / "data"
    token = provision(data)
    gateway_product = create_product(data, "protocol_gateway")
    smoke_product = create_product(data, "smoke_detector")
    sensor_product = create_product(data, "environment_sensor")
    door_product = create_product(data, "door_contact", "--dynamic-registration")
    tsl = work / "gateway.json"
    tsl.write_text(run("product", "tsl", "--data", str(data), "--product-key", gateway_product).stdout)
    site = {
        "gateway": create_device(data, gateway_product, "gw-1"),
        "gateway2": create_device(data, gateway_product, "gw-2"),
        "smoke1": create_device(data, smoke_product, "smoke-1"),
        "smoke2": create_device(data, smoke_product, "smoke-2"),
        "smoke3": create_device(data, smoke_product, "smoke-3"),
        "sensor": create_device(data, sensor_product, "env-1"),
        "gateway3": create_device(data, gateway_product, "gw-3"),
        "smoke4": create_device(data, smoke_product, "smoke-4"),
        "smoke5": create_device(data, smoke_product, "smoke-5"),
        "gateway4": create_device(data, gateway_product, "gw-4"),
        "door1": create_device(data, door_product, "door-1"),
        "door2": create_device(data, door_product, "door-2"),
        "doorUsed": create_device(data, door_product, "door-used"),
        "gateway5": create_device(data, gateway_product, "gw-5"),
        "smoke6": create_device(data, smoke_product, "smoke-6"),
        "tsl": str(tsl),
        "token": token,
    }
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    time.sleep(0.5)
    site.update(port=port, url=node.url, work=work)
    yield site
    assert node.stop() == 0, node.log.read_text()


@pytest.fixture(scope="module")
def server(site: dict):
    """What the browser fixtures of test_console need: the base URL and a folder for screenshots."""
    return SimpleNamespace(base_url=site["url"], workdir=site["work"])


def api(site: dict, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, site["url"] + "/api/v1" + path, headers={"Authorization": "Bearer " + site["token"]}, timeout=30, **kwargs)


def device_view(site: dict, triple: tuple[str, str, str]) -> dict:
    r = api(site, "GET", f"/devices/{triple[0]}/{triple[1]}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(check, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail("condition not met in time")


def signed(triple: tuple[str, str, str], client_id: str | None = None, timestamp: str | None = None, secret: str | None = None) -> dict:
    """A sub-device entry as a gateway presents it: signed with the sub-device's own secret."""
    pk, dn, own_secret = triple
    ts = timestamp or str(int(time.time() * 1000))
    cid = client_id or f"{pk}.{dn}"
    content = f"clientId{cid}deviceName{dn}productKey{pk}timestamp{ts}"
    sign = hmac.new((secret or own_secret).encode(), content.encode(), hashlib.sha256).hexdigest()
    return {"productKey": pk, "deviceName": dn, "clientId": cid, "timestamp": ts, "signmethod": "hmacSha256", "sign": sign}




def request(c, inbox: "queue.Queue", topic: str, params, request_id: str) -> dict:
    c.publish(topic, json.dumps({"id": request_id, "version": "1.0", "params": params}), qos=1)
    while True:
        item = expect(inbox, "message", 10)
        if item[1] == topic + "_reply" and item[2]["id"] == request_id:
            return item[2]


def test_link_kit_gateway_brings_sub_devices_in(site: dict):
    gpk, gdn, gsecret = site["gateway"]
    spk, sdn, ssecret = site["smoke1"]
    _, sdn2, ssecret2 = site["smoke2"]
    inbox: queue.Queue = queue.Queue()
    lk = link_kit(site["port"], (gpk, gdn, gsecret), site["tsl"], inbox)
    lk.on_gateway_add_subdev_topo_reply = lambda rid, code, data, message, ud: inbox.put(("topo_add", code, data, message))
    lk.on_gateway_delete_subdev_topo_reply = lambda rid, code, data, message, ud: inbox.put(("topo_delete", code, data, message))
    lk.on_gateway_login_subdev_reply = lambda rid, code, data, message, ud: inbox.put(("login", code, data, message))
    lk.on_gateway_logout_subdev_reply = lambda rid, code, data, message, ud: inbox.put(("logout", code, data, message))
    lk.on_subscribe_topic = lambda mid, granted_qos, ud: inbox.put(("subscribed", granted_qos))
    lk.on_topic_message = lambda topic, payload, qos, ud: inbox.put(("message", topic, json.loads(payload)))
    lk.connect_async()
    try:
        assert expect(inbox, "connect", 15)[1] == 0
        # Topology: both smoke detectors, each signed with its own secret.
        assert lk.gateway_add_subdev_topo([[spk, sdn, ssecret], [spk, sdn2, ssecret2]])[0] == 0
        added = expect(inbox, "topo_add", 15)
        assert added[1] == 200, added
        assert sorted(d["deviceName"] for d in added[2]) == [sdn, sdn2]
        view = device_view(site, site["smoke1"])
        assert view["gateway"]["deviceName"] == gdn and view["connected"] is False
        gateway_view = device_view(site, site["gateway"])
        assert sorted(d["deviceName"] for d in gateway_view["subDevices"]) == [sdn, sdn2]

        # The gateway subscribes to its sub-device's topics, as gateways do.
        assert lk.subscribe_topic(f"/sys/{spk}/{sdn}/thing/event/property/post_reply", 1)[0] == 0
        assert expect(inbox, "subscribed", 15)

        # Posting for a sub-device that is attached but not signed in is answered, not stored.
        post = f"/sys/{spk}/{sdn}/thing/event/property/post"
        lk.publish_topic(post, json.dumps({"id": "1", "version": "1.0", "params": {"SmokeSensorState": 0}}), 1)
        reply = expect(inbox, "message", 15)
        assert reply[1] == post + "_reply" and reply[2]["code"] == 520, reply

        # Sign in through the gateway: online, reachable, and its posts are checked against its own model.
        assert lk.gateway_login_subdev([[spk, sdn, ssecret]])[0] == 0
        login = expect(inbox, "login", 15)
        assert login[1] == 200, login
        wait_for(lambda: device_view(site, site["smoke1"])["status"] == "online")
        assert device_view(site, site["smoke1"])["connected"] is True

        lk.publish_topic(post, json.dumps({"id": "2", "version": "1.0", "params": {"SmokeSensorState": 1, "SmokeConcentration": 412.5}}), 1)
        reply = expect(inbox, "message", 15)
        assert reply[2]["id"] == "2" and reply[2]["code"] == 200, reply
        lk.publish_topic(post, json.dumps({"id": "3", "version": "1.0", "params": {"SmokeConcentration": 99999}}), 1)
        reply = expect(inbox, "message", 15)
        assert reply[2]["id"] == "3" and reply[2]["code"] == 6306, reply
        shadow = {v["identifier"]: v for v in api(site, "GET", f"/devices/{spk}/{sdn}/shadow").json()["items"]}
        assert json.loads(shadow["SmokeConcentration"]["reported"]) == 412.5

        # Linli → sub-device: a service call goes to the gateway on the sub-device's topic; the
        # gateway answers for it and the API returns that answer.
        result: dict = {}
        call = threading.Thread(target=lambda: result.update(r=api(site, "POST", f"/devices/{spk}/{sdn}/services/Mute", json={"params": {}})))
        call.start()
        while True:
            item = expect(inbox, "message", 15)
            if item[1] == f"/sys/{spk}/{sdn}/thing/service/Mute":
                break
        lk.publish_topic(item[1] + "_reply", json.dumps({"id": item[2]["id"], "code": 200, "data": {}}), 1)
        call.join(30)
        assert result["r"].status_code == 200, result["r"].text
        assert result["r"].json()["code"] == 200

        # Sign out: offline, and posts are refused again.
        assert lk.gateway_logout_subdev([[spk, sdn]])[0] == 0
        assert expect(inbox, "logout", 15)[1] == 200
        wait_for(lambda: device_view(site, site["smoke1"])["status"] == "offline")

        # Topology removed: the sub-device can no longer sign in through this gateway.
        assert lk.gateway_delete_subdev_topo([[spk, sdn2]])[0] == 0
        assert expect(inbox, "topo_delete", 15)[1] == 200
        assert device_view(site, site["smoke2"]).get("gateway") is None
        assert lk.gateway_login_subdev([[spk, sdn2, ssecret2]])[0] == 0
        refused = expect(inbox, "login", 15)
        assert refused[1] == 6401, refused

        # Signed in again, then the gateway goes away: its sub-devices go offline with it.
        assert lk.gateway_login_subdev([[spk, sdn, ssecret]])[0] == 0
        assert expect(inbox, "login", 15)[1] == 200
        wait_for(lambda: device_view(site, site["smoke1"])["status"] == "online")
    finally:
        lk.disconnect()
        lk.destroy()
    wait_for(lambda: device_view(site, site["smoke1"])["status"] == "offline")
    # Attaching and detaching are on the audit trail, with the gateway as the actor.
    audit = api(site, "GET", "/audit", params={"subjectId": device_view(site, site["smoke2"])["id"]})
    assert audit.status_code == 200, audit.text
    actions = {e["action"]: e for e in audit.json()["items"]}
    assert "device.topology.added" in actions and "device.topology.removed" in actions
    assert actions["device.topology.added"]["actorName"] == f"gateway {gpk}/{gdn}"


def test_console_links_a_gateway_and_its_sub_devices(site: dict, page):
    """After the Link Kit test: smoke-1 stays attached to gw-1, smoke-2 was detached."""
    gpk, gdn, _ = site["gateway"]
    spk, sdn, _ = site["smoke1"]
    log_in(page, site["url"], "ops", OPS_PASSWORD)
    wait(page).until(lambda d: "/login" not in d.current_url)
    page.get(f"{site['url']}/console/d/{gpk}/{gdn}")
    rows = element(page, "#sub-devices").find_elements(By.CSS_SELECTOR, "tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "code").text for r in rows] == [f"{spk}/{sdn}"]
    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    wait(page).until(lambda d: d.current_url.endswith(f"/console/d/{spk}/{sdn}"))
    assert f"{gpk}/{gdn}" in element(page, "#gateway").text
    page.get(f"{site['url']}/console/d/{site['smoke2'][0]}/{site['smoke2'][1]}")
    element(page, "#shadow")
    assert page.find_elements(By.CSS_SELECTOR, "#gateway") == [] and page.find_elements(By.CSS_SELECTOR, "#sub-devices") == []


def test_gateway_requests_are_checked(site: dict):
    gpk, gdn, _ = site["gateway2"]
    spk, sdn3, secret3 = site["smoke3"]
    c, inbox = alink_device(site["port"], site["gateway2"])
    assert expect(inbox, "connack")[1] == 0
    add = f"/sys/{gpk}/{gdn}/thing/topo/add"
    c.subscribe(f"/sys/{gpk}/{gdn}/thing/topo/#", 1)
    c.subscribe(f"/ext/session/{gpk}/{gdn}/#", 1)
    expect(inbox, "suback")
    expect(inbox, "suback")
    try:
        # A signature made with another secret, a stale timestamp, an unknown device, the gateway itself.
        assert request(c, inbox, add, [signed(site["smoke3"], secret="not-the-secret")], "1")["code"] == 401
        assert request(c, inbox, add, [signed(site["smoke3"], timestamp=str(int(time.time() * 1000) - 3_600_000))], "2")["code"] == 401
        assert request(c, inbox, add, [signed((spk, "no-such-device", "x"))], "3")["code"] == 6100
        assert request(c, inbox, add, [signed(site["gateway2"])], "4")["code"] == 6402
        # All or nothing: one bad entry and nothing is attached.
        reply = request(c, inbox, add, [signed(site["smoke3"]), signed(site["smoke3"], secret="wrong")], "5")
        assert reply["code"] == 401 and reply["data"][0]["deviceName"] == sdn3
        assert request(c, inbox, f"/sys/{gpk}/{gdn}/thing/topo/get", {}, "6")["data"] == []
        # More than 50 at once is refused whole.
        assert request(c, inbox, add, [signed(site["smoke3"])] * 51, "7")["code"] == 429
        # A good one, then its login by the batch form the C SDK uses.
        assert request(c, inbox, add, [signed(site["smoke3"])], "8")["code"] == 200
        assert request(c, inbox, f"/sys/{gpk}/{gdn}/thing/topo/get", {}, "9")["data"] == [{"productKey": spk, "deviceName": sdn3}]
        entry = signed(site["smoke3"], client_id=f"{spk}&{sdn3}")
        del entry["signmethod"]
        login = request(c, inbox, f"/ext/session/{gpk}/{gdn}/combine/batch_login", {"signMethod": "hmacsha256", "deviceList": [entry]}, "10")
        assert login["code"] == 200 and login["data"] == [{"productKey": spk, "deviceName": sdn3}]
        wait_for(lambda: device_view(site, site["smoke3"])["status"] == "online")

        # A disabled sub-device is taken off the gateway; the gateway keeps its connection.
        r = api(site, "PATCH", f"/devices/{spk}/{sdn3}", json={"enabled": False})
        assert r.status_code == 200, r.text
        post = f"/sys/{spk}/{sdn3}/thing/event/property/post"
        assert request(c, inbox, post, {"SmokeSensorState": 0}, "11")["code"] == 520
        assert request(c, inbox, f"/ext/session/{gpk}/{gdn}/combine/login", signed(site["smoke3"]) | {"signMethod": "hmacSha256"}, "12")["code"] == 6204
        assert api(site, "PATCH", f"/devices/{spk}/{sdn3}", json={"enabled": True}).status_code == 200

        # Topics of a device that is not attached are not the gateway's: the connection ends.
        _, sensor_dn, _ = site["sensor"]
        c.publish(f"/sys/{site['sensor'][0]}/{sensor_dn}/thing/event/property/post", json.dumps({"id": "13", "params": {}}), qos=1)
        expect(inbox, "disconnect", 10)
    finally:
        c.disconnect()
        c.loop_stop()


def test_only_a_gateway_product_may_attach_devices(site: dict):
    pk, dn, _ = site["sensor"]
    c, inbox = alink_device(site["port"], site["sensor"])
    assert expect(inbox, "connack")[1] == 0
    c.subscribe(f"/sys/{pk}/{dn}/thing/topo/#", 1)
    expect(inbox, "suback")
    try:
        reply = request(c, inbox, f"/sys/{pk}/{dn}/thing/topo/add", [signed(site["smoke3"])], "1")
        assert reply["code"] == 6403 and "not a gateway" in reply["message"]
    finally:
        c.disconnect()
        c.loop_stop()


def test_a_gateway_posts_for_itself_and_its_sub_devices_in_one_pack(site: dict):
    """`thing.event.property.pack.post`: one message, one commit, each device's values on its own
    shadow and history and its events on the log; one bad value refuses the whole pack."""
    gpk, gdn, _ = site["gateway3"]
    spk, sdn4, _ = site["smoke4"]
    _, sdn5, _ = site["smoke5"]
    c, inbox = alink_device(site["port"], site["gateway3"])
    assert expect(inbox, "connack")[1] == 0
    c.subscribe(f"/sys/{gpk}/{gdn}/thing/#", 1)
    c.subscribe(f"/ext/session/{gpk}/{gdn}/#", 1)
    expect(inbox, "suback")
    expect(inbox, "suback")
    pack = f"/sys/{gpk}/{gdn}/thing/event/property/pack/post"
    try:
        assert request(c, inbox, f"/sys/{gpk}/{gdn}/thing/topo/add", [signed(site["smoke4"]), signed(site["smoke5"])], "1")["code"] == 200
        # smoke-5 is attached but not signed in yet: a pack for it is refused whole.
        login = request(c, inbox, f"/ext/session/{gpk}/{gdn}/combine/login", signed(site["smoke4"]) | {"signMethod": "hmacSha256"}, "2")
        assert login["code"] == 200, login
        now = int(time.time() * 1000)
        smoke4 = {"identity": {"productKey": spk, "deviceName": sdn4}, "properties": {"SmokeConcentration": {"value": 12.5, "time": now - 1000}}}
        smoke5 = {"identity": {"productKey": spk, "deviceName": sdn5}, "properties": {"SmokeConcentration": {"value": 3, "time": now}}}
        early = request(c, inbox, pack, {"subDevices": [smoke4, smoke5]}, "3")
        assert early["code"] == 520 and f"subDevices[1].identity" in early["message"], early
        assert device_view(site, site["smoke4"])["shadow"] == [] or all(v.get("reported") is None for v in device_view(site, site["smoke4"])["shadow"]), \
            "nothing of a refused pack is stored"
        login = request(c, inbox, f"/ext/session/{gpk}/{gdn}/combine/login", signed(site["smoke5"]) | {"signMethod": "hmacSha256"}, "4")
        assert login["code"] == 200, login

        # Every fault is named with its place.
        bad = dict(smoke5, properties={"SmokeConcentration": {"value": 99999, "time": now}}, events={"SmokeAlarm": {"value": {"SmokeConcentration": 1}, "time": "now"}})
        refused = request(c, inbox, pack, {"properties": {"CPUUsage": {"value": 12, "time": now}}, "subDevices": [smoke4, bad]}, "5")
        assert refused["code"] == 6306
        assert "subDevices[1].properties.SmokeConcentration.value" in refused["message"] and "subDevices[1].events.SmokeAlarm.time" in refused["message"]

        alarm = dict(smoke5, events={"SmokeAlarm": {"value": {"SmokeConcentration": 850}, "time": now - 500}})
        done = request(c, inbox, pack, {"properties": {"CPUUsage": {"value": 12.5, "time": now}, "SubDeviceCount": {"value": 2, "time": now}},
                                        "subDevices": [smoke4, alarm]}, "6")
        assert done["code"] == 200, done
        gateway_shadow = {v["identifier"]: v for v in device_view(site, site["gateway3"])["shadow"]}
        assert gateway_shadow["CPUUsage"]["reported"] == "12.5" and gateway_shadow["SubDeviceCount"]["reported"] == "2"
        smoke_shadow = {v["identifier"]: v for v in device_view(site, site["smoke4"])["shadow"]}
        assert smoke_shadow["SmokeConcentration"]["reported"] == "12.5" and smoke_shadow["SmokeConcentration"]["reportedAt"] == now - 1000
        events = api(site, "GET", "/events?limit=500").json()["items"]
        payloads = [json.loads(e["payload"]) if isinstance(e["payload"], str) else e["payload"] for e in events if e["type"] == "device.event"]
        raised = [p for p in payloads if p["deviceName"] == sdn5]
        assert len(raised) == 1 and raised[0]["identifier"] == "SmokeAlarm" and raised[0]["at"] == now - 500, raised
    finally:
        c.disconnect()
        c.loop_stop()



def test_a_gateway_asks_for_the_secrets_of_sub_devices_registered_for_it(site: dict):
    """Alink's sub-device registration (Link Kit's gateway_register_subdev): the operator registers
    the names and lets the product's devices be registered this way; the gateway gets their
    secrets, attaches and signs them in, and no secret of a device in use elsewhere is given out."""
    gpk, gdn, gsecret = site["gateway4"]
    dpk, d1, secret1 = site["door1"]
    _, d2, secret2 = site["door2"]
    # A door contact that has signed in by itself: in use, not the gateway's to take.
    used, used_inbox = alink_device(site["port"], site["doorUsed"])
    assert expect(used_inbox, "connack")[1] == 0
    used.loop_stop()
    used.disconnect()
    inbox: queue.Queue = queue.Queue()
    lk = link_kit(site["port"], (gpk, gdn, gsecret), site["tsl"], inbox)
    lk.on_gateway_register_subdev_reply = lambda rid, code, data, message, ud: inbox.put(("register", code, data, message))
    lk.on_gateway_add_subdev_topo_reply = lambda rid, code, data, message, ud: inbox.put(("topo_add", code, data, message))
    lk.on_gateway_login_subdev_reply = lambda rid, code, data, message, ud: inbox.put(("login", code, data, message))
    lk.connect_async()
    try:
        assert expect(inbox, "connect", 15)[1] == 0
        assert lk.gateway_register_subdev([[dpk, d1], [dpk, d2]])[0] == 0
        registered = expect(inbox, "register", 15)
        assert registered[1] == 200, registered
        secrets = {d["deviceName"]: d["deviceSecret"] for d in registered[2]}
        assert secrets == {d1: secret1, d2: secret2}
        assert all(d["iotId"] == device_view(site, site["door1" if d["deviceName"] == d1 else "door2"])["id"] for d in registered[2])

        # With the secrets it got, the gateway attaches them and signs one in.
        assert lk.gateway_add_subdev_topo([[dpk, d1, secrets[d1]], [dpk, d2, secrets[d2]]])[0] == 0
        assert expect(inbox, "topo_add", 15)[1] == 200
        assert lk.gateway_login_subdev([[dpk, d1, secrets[d1]]])[0] == 0
        assert expect(inbox, "login", 15)[1] == 200
        wait_for(lambda: device_view(site, site["door1"])["status"] == "online")
        # Asking again for its own sub-device is answered (a gateway that lost its store).
        assert lk.gateway_register_subdev([[dpk, d1]])[0] == 0
        assert expect(inbox, "register", 15)[1] == 200

        # Refused, whole: a product that does not allow it, an unknown name, a device in use elsewhere.
        spk, sdn, _ = site["smoke5"]
        for entries, code in [([[spk, sdn]], 401), ([[dpk, "door-404"]], 6100), ([[dpk, "door-used"]], 401), ([[dpk, d2], [gpk, gdn]], 6402)]:
            assert lk.gateway_register_subdev(entries)[0] == 0
            refused = expect(inbox, "register", 15)
            assert refused[1] == code and not any("deviceSecret" in d for d in refused[2]), (entries, refused)
    finally:
        lk.disconnect()
        lk.destroy()
    # Each secret given out is on the audit log, with the gateway as the actor.
    audit = api(site, "GET", "/audit", params={"subjectId": device_view(site, site["door1"])["id"], "action": "device.secret.issued"})
    assert audit.status_code == 200, audit.text
    entries = audit.json()["items"]
    assert len(entries) == 2 and all(e["actorName"] == f"gateway {gpk}/{gdn}" for e in entries)
    product = api(site, "GET", f"/products/{dpk}").json()
    assert product["dynamicRegistration"] is True


def test_a_gateway_is_told_when_its_sub_device_is_disabled_and_enabled(site: dict):
    """Alibaba's thing.topo.change (Link Kit's on_gateway_topo_change): an operator disabling a
    sub-device tells its gateway (status 8), enabling it tells it again (status 2)."""
    gpk, gdn, gsecret = site["gateway5"]
    spk, sdn, ssecret = site["smoke6"]
    inbox: queue.Queue = queue.Queue()
    lk = link_kit(site["port"], (gpk, gdn, gsecret), site["tsl"], inbox)
    lk.on_gateway_add_subdev_topo_reply = lambda rid, code, data, message, ud: inbox.put(("topo_add", code))
    lk.on_gateway_login_subdev_reply = lambda rid, code, data, message, ud: inbox.put(("login", code))
    lk.on_gateway_topo_change = lambda request_id, params, ud: inbox.put(("topo_change", params))
    lk.connect_async()
    try:
        assert expect(inbox, "connect", 15)[1] == 0
        assert lk.gateway_add_subdev_topo([[spk, sdn, ssecret]])[0] == 0
        assert expect(inbox, "topo_add", 15)[1] == 200
        assert lk.gateway_login_subdev([[spk, sdn, ssecret]])[0] == 0
        assert expect(inbox, "login", 15)[1] == 200
        wait_for(lambda: device_view(site, site["smoke6"])["status"] == "online")

        assert api(site, "PATCH", f"/devices/{spk}/{sdn}", json={"enabled": False}).status_code == 200
        change = expect(inbox, "topo_change", 10)[1]
        assert change == {"status": 8, "subList": [{"productKey": spk, "deviceName": sdn}]}, change
        assert device_view(site, site["smoke6"])["connected"] is False

        assert api(site, "PATCH", f"/devices/{spk}/{sdn}", json={"enabled": True}).status_code == 200
        assert expect(inbox, "topo_change", 10)[1]["status"] == 2
        # Enabled again, it signs in through the gateway as before.
        assert lk.gateway_login_subdev([[spk, sdn, ssecret]])[0] == 0
        assert expect(inbox, "login", 15)[1] == 200
    finally:
        lk.disconnect()
        lk.destroy()
